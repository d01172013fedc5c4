"""Run a DVC command and end with a one-line summary (what `make repro` and `make demo` use).

    python tools/run.py repro
    python tools/run.py exp run -S zoo=mini -S reference.n_images=100 -S reference.image_size=64

DVC's output passes through unchanged; the last line says which stages ran, which came from
the run cache, which were up to date, the wall time, and the headline ρ of
``metrics/correlation.json``. The exit status is DVC's.

Before and after DVC runs, the temporary files that killed runs left behind are swept: those
under ``data/`` and ``metrics/`` of dead processes of this host
(:func:`modelgif._atomic.sweep_stale_tree`: an output the run cache restored is never
rewritten, so no writer would sweep them) and the archive scratch folders of dead processes
in the temporary folder (:func:`modelgif.reference.archives.sweep_stale_scratch`). A line
says what was removed, if anything.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

METRICS = Path("metrics/correlation.json")
#: Folders (relative to the project root) swept of stale temporary files around a DVC run.
SWEPT = ("data", "metrics")


def _size(n: int) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def sweep(roots=SWEPT, scratch_parent=None) -> str | None:
    """Remove stale temporary files under ``roots`` and stale archive scratch folders (module
    doc); the one-line report of what was removed, or None when nothing was."""
    from modelgif._atomic import sweep_stale_tree
    from modelgif.reference.archives import sweep_stale_scratch

    files = [item for root in roots for item in sweep_stale_tree(root)]
    folders = sweep_stale_scratch(scratch_parent)
    if not files and not folders:
        return None
    parts = []
    if files:
        parts.append(f"{len(files)} temporary file(s) ({_size(sum(n for _, n in files))})")
    if folders:
        parts.append(f"{len(folders)} archive scratch folder(s) ({_size(sum(n for _, n in folders))})")
    return "swept " + " and ".join(parts) + " left by killed runs"


def summarize(output: str, seconds: float, metrics: Path = METRICS, returncode: int = 0) -> str:
    """The one-line summary of a DVC run's ``output`` (stdout and stderr together)."""
    ran = re.findall(r"Running stage '([^']+)'", output)
    cached = re.findall(r"Stage '([^']+)' is cached - skipping run", output)
    unchanged = re.findall(r"Stage '([^']+)' didn't change, skipping", output)
    no_lock = len(re.findall(r"No file hash info found for", output))
    minutes, secs = divmod(round(seconds), 60)
    parts = [f"{len(ran)} stage(s) ran", f"{len(cached)} restored from the run cache",
             f"{len(unchanged)} up to date", f"{minutes}m{secs:02d}s"]
    line = "summary: " + ", ".join(parts)
    if returncode:
        return f"{line}; FAILED (exit status {returncode}): see the error above"
    try:
        result = json.loads(metrics.read_text())
        # per table, the modelgif method's entry (issue 12's per-method layout), or the table's own
        result = {table: m.get("modelgif", m) for table, m in result.items() if table != "provenance"}
        rhos = [f"{table} {m['mean_rho']:+.4f}"
                + (f" (off-diagonal {m['mean_rho_off_diagonal']:+.4f})" if "mean_rho_off_diagonal" in m else "")
                for table, m in result.items()]
        line += "; mean rho vs " + ", ".join(rhos) if rhos else "; no ground truth (the zoo declares none)"
    except (OSError, ValueError, KeyError, TypeError):
        line += f"; no metrics in {metrics}"
    if no_lock:
        line += (f"; first run: {no_lock} output(s) had no dvc.lock entry yet (hence DVC's "
                 "'No file hash info found' warnings)")
    return line


def status_summary(status: dict, lock: dict) -> str:
    """A short account of ``dvc status --json dvc.yaml`` (``status``), given the stages that
    ``dvc.lock`` records (``lock``): which stages never ran, which changed and why, and the
    settings stage (always run) named once. One line per group, foreach items counted."""
    never, changed = [], {}
    for name, entries in status.items():
        if name == "settings":
            continue
        if name not in lock:
            never.append(name)
            continue
        why = set()
        for entry in entries:
            if isinstance(entry, dict):
                for kind, files in entry.items():
                    if isinstance(files, dict):  # {"changed deps": {path: "modified"}}
                        why.update(f"{kind.replace('changed ', '')} {f} {state}" for f, state in files.items())
                    else:
                        why.add(kind)
            else:
                why.add(str(entry))
        changed[name] = sorted(why)

    def groups(names):
        counts: dict[str, int] = {}
        for n in names:
            counts[n.split("@")[0]] = counts.get(n.split("@")[0], 0) + 1
        return ", ".join(f"{k}@ x{v}" if v > 1 or "@" in k else k for k, v in counts.items())

    lines = ["status: the settings stage runs on every repro (it looks into sources outside the repository)"]
    if never:
        lines.append(f"never run (no dvc.lock entry): {len(never)} stage(s): {groups(never)}")
    for name, why in changed.items():
        lines.append(f"changed: {name}: {'; '.join(why[:3])}{' ...' if len(why) > 3 else ''}")
    if not never and not changed:
        lines.append("everything else is up to date")
    return "\n".join(lines)


def status(argv: list[str]) -> int:
    """``make status``: DVC's status of the main pipeline, summarised (:func:`status_summary`)."""
    import yaml

    proc = subprocess.run(["dvc", "status", "dvc.yaml", "--json", *argv], capture_output=True, text=True)
    if proc.returncode:
        sys.stderr.write(proc.stdout + proc.stderr)
        return proc.returncode
    lock = Path("dvc.lock")
    stages = (yaml.safe_load(lock.read_text()) or {}).get("stages", {}) if lock.is_file() else {}
    print(status_summary(json.loads(proc.stdout or "{}"), stages))
    return 0


def _sweep_and_say() -> None:
    try:
        line = sweep()
    except OSError as e:  # never a reason not to run DVC
        line = f"warning: could not sweep stale temporary files: {e}"
    if line:
        print(line, flush=True)


def requested_zoo(argv: list[str], params: Path = Path("params.yaml")) -> str | None:
    """The zoo a ``repro`` / ``exp run`` will use: the last ``-S zoo=…`` (``--set-param``), else
    params.yaml's ``zoo``; None for other commands."""
    if argv[:1] not in (["repro"], ["exp"]):
        return None
    zoo = None
    for flag, value in zip(argv, argv[1:]):
        if flag in ("-S", "--set-param") and value.startswith("zoo="):
            zoo = value.split("=", 1)[1]
    if zoo is None and params.is_file():
        import yaml

        zoo = (yaml.safe_load(params.read_text()) or {}).get("zoo")
    return None if zoo is None else str(zoo)


def main(argv: list[str]) -> int:
    zoo = requested_zoo(argv)
    if zoo is not None:  # DVC itself would say only "[Errno 2] No such file" of zoos/<zoo>.yaml
        from modelgif.zoo_spec import ZooError, zoo_path

        try:
            zoo_path(zoo)
        except ZooError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
    t0 = time.perf_counter()
    _sweep_and_say()
    proc = subprocess.Popen(["dvc", *argv], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    chunks = []
    while block := os.read(proc.stdout.fileno(), 65536):
        sys.stdout.buffer.write(block)
        sys.stdout.buffer.flush()
        chunks.append(block)
    rc = proc.wait()
    _sweep_and_say()
    print(summarize(b"".join(chunks).decode(errors="replace"), time.perf_counter() - t0, returncode=rc))
    return rc


if __name__ == "__main__":
    sys.exit(status(sys.argv[2:]) if sys.argv[1:2] == ["status"] else main(sys.argv[1:]))
