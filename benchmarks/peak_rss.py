"""Run a Python script as ``__main__`` and write its peak resident memory at exit.

    MODELGIF_PEAK_RSS_OUT=peak.json python benchmarks/peak_rss.py stages/field.py ARGS...

Writes ``{"vmhwm_kb": ..., "exit": ...}``: the process's ``VmHWM`` from ``/proc/self/status``
(``ru_maxrss`` would carry over the size of the process that started it through fork and
exec). The script's folder is put first on ``sys.path``, as ``python script`` does.
"""

from __future__ import annotations

import atexit
import json
import os
import runpy
import sys
from pathlib import Path


def vmhwm_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def main() -> None:
    out = Path(os.environ["MODELGIF_PEAK_RSS_OUT"])
    atexit.register(lambda: out.write_text(json.dumps({"vmhwm_kb": vmhwm_kb()})))
    script = sys.argv[1]
    sys.argv = sys.argv[1:]
    sys.path.insert(0, str(Path(script).resolve().parent))
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
