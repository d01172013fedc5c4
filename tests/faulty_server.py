"""A local HTTP server that misbehaves on purpose: drops connections, stalls, trickles.

``serve_faulty(root, fault)`` serves the files under ``root`` like
:func:`helpers.serve_directory`, except that ``fault`` decides how each GET is answered:

- ``"truncate_once"``: the first GET of each path announces the full ``Content-Length`` but
  sends only half of the body, then closes the connection; later GETs are served whole;
- ``"stall"``: headers and the first half of the body, then nothing (until the server stops);
- ``"trickle"``: the body one byte every 0.2 s (each read is quick, the whole is endless).

It returns ``(base_url, requests, stop)``; ``requests`` is a ``collections.Counter`` of GETs per path.
"""

from __future__ import annotations

import collections
import http.server
import threading
from pathlib import Path

FAULTS = ("truncate_once", "stall", "trickle")


def serve_faulty(root: str | Path, fault: str):
    if fault not in FAULTS:
        raise ValueError(f"unknown fault {fault!r}; one of {FAULTS}")
    root = Path(root)
    requests: collections.Counter = collections.Counter()
    lock = threading.Lock()
    released = threading.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format, *args):  # noqa: A002 - the base class's signature
            pass

        def do_GET(self):  # noqa: N802 - the base class's naming
            path = self.path.split("?", 1)[0]
            with lock:
                requests[path] += 1
                count = requests[path]
            file = root / path.lstrip("/")
            if not file.is_file():
                self.send_error(404)
                return
            body = file.read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            try:
                if fault == "truncate_once" and count == 1:
                    self.wfile.write(body[: len(body) // 2])
                elif fault == "stall":
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    released.wait()
                elif fault == "trickle":
                    for i in range(len(body)):
                        self.wfile.write(body[i : i + 1])
                        self.wfile.flush()
                        if released.wait(0.2):
                            break
                else:
                    self.wfile.write(body)
                self.wfile.flush()
            except OSError:
                pass  # the client gave up
            self.close_connection = True

    class Server(http.server.ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 128

    server = Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()

    def stop():
        released.set()
        server.shutdown()
        server.server_close()
        thread.join()

    return f"http://127.0.0.1:{server.server_address[1]}", requests, stop
