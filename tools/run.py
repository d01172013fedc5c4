"""Run a DVC command and end with a one-line summary (what `make repro` and `make demo` use).

    python tools/run.py repro
    python tools/run.py exp run -S zoo=mini -S reference.n_images=100 -S reference.image_size=64
    python tools/run.py demo [ZOO] [-S key=value ...]   # make demo: the above, params.yaml left as it was
    python tools/run.py show [dvc exp show options]     # make show: experiments side by side, no pager

``demo`` is ``exp run`` with the demo's settings (:data:`DEMO_SETTINGS`, then the zoo, then any
``-S`` given, a later value of a key replacing an earlier one), run with params.yaml kept
byte for byte (:func:`params_kept`): ``dvc exp run -S`` rewrites params.yaml and drops its
comments. The experiment records the settings it ran with (``dvc exp show``); its outputs are
the workspace's (``dvc metrics show``, ``dvc plots show``); ``dvc exp apply <name>`` puts its
settings into params.yaml.

``show`` is ``dvc exp show --csv`` with the params that differ between the experiments and
the headline metrics (``metrics/headline.json``'s keys, :func:`show_keep`, kept even where equal;
:data:`SHOW_DROP` dropped),
printed one row per param or metric and one column per experiment, in as many blocks of
experiments as the terminal's width needs: never in a pager, never a cell cut to ``…``.

DVC's output passes through unchanged; the last line says which stages ran, which came from
the run cache, which were up to date, the wall time, and the headline ρ of
``metrics/correlation.json``. The exit status is DVC's.

Before and after DVC runs, the temporary files that killed runs left behind are swept: those
under ``data/`` and ``metrics/`` of dead processes of this host
(:func:`modelgif.io.atomic.sweep_stale_tree`: an output the run cache restored is never
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
from contextlib import contextmanager
from pathlib import Path

METRICS = Path("metrics/correlation.json")
#: The DVC metric (stages/correlate.py): flat, each method's headline score on the primary table.
HEADLINE = Path("metrics/headline.json")
#: Folders (relative to the project root) swept of stale temporary files around a DVC run.
SWEPT = ("data", "metrics")


def _size(n: int) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def sweep(roots=SWEPT, scratch_parent=None) -> str | None:
    """Remove stale temporary files under ``roots`` and stale archive scratch folders (module
    doc); the one-line report of what was removed, or None when nothing was."""
    from modelgif.io.atomic import sweep_stale_tree
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
    """``make status``: DVC's status of the main pipeline, summarised (:func:`status_summary`),
    after the settings stage has looked (it writes each step's settings and each stage's code
    fingerprint, ``data/settings/``: without it DVC cannot see an edited module or param)."""
    import yaml

    looked = subprocess.run(["dvc", "repro", "--single-item", "settings", "-q"], capture_output=True, text=True)
    if looked.returncode:
        sys.stderr.write(looked.stdout + looked.stderr)
        return looked.returncode
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


#: ``make demo``: the mini zoo's 100 rendered reference scenes at the mini encoders' 64 px.
DEMO_ZOO = "mini"
DEMO_SETTINGS = ("reference.n_images=100", "reference.image_size=64")
#: ... and, where the reference set has task labels (rendered from ``mini-scenes``: the mini zoos' own),
#: the label-using transferability estimators after params.yaml's methods (issue 23), unless a
#: ``-S methods=...`` is given.
DEMO_ESTIMATORS = ("logme", "linear_mse", "knn")


@contextmanager
def params_kept(path: Path = Path("params.yaml")):
    """Put ``path`` back as it was, byte for byte, when the block ends (normally, on an error or
    on Ctrl-C) if the block changed it; a file that was missing is left as the block left it."""
    original = path.read_bytes() if path.is_file() else None
    try:
        yield
    finally:
        if original is not None and (not path.is_file() or path.read_bytes() != original):
            from modelgif.io.atomic import atomic_path

            with atomic_path(path) as tmp:
                tmp.write_bytes(original)


def _labelled(zoo: str, source: str) -> bool:
    """Whether ``zoo``'s reference set from ``source`` (``reference.source``) has task labels."""
    from modelgif.reference.labels import LABELLED_SOURCE
    from modelgif.zoo.spec import ZooError, load_zoo_spec

    if source == "zoo":
        try:
            source = load_zoo_spec(zoo).reference
        except (ZooError, OSError):
            return False  # not a zoo this can read: the run itself names the problem
    return source == LABELLED_SOURCE


def demo_argv(argv: list[str], params: Path = Path("params.yaml")) -> list[str]:
    """The ``dvc exp run`` arguments of ``demo [ZOO] [-S key=value ...]`` (module doc): on a zoo
    whose reference set has labels, ``methods`` is ``params``'s methods and :data:`DEMO_ESTIMATORS`."""
    settings: dict[str, str] = {}
    for item in DEMO_SETTINGS:
        settings[item.split("=", 1)[0]] = item
    zoo, rest = DEMO_ZOO, list(argv)
    if rest and not rest[0].startswith("-"):
        zoo = rest.pop(0)
    settings["zoo"] = f"zoo={zoo}"
    while rest:
        flag = rest.pop(0)
        if flag not in ("-S", "--set-param") or not rest or "=" not in rest[0]:
            raise SystemExit(f"usage: tools/run.py demo [ZOO] [-S key=value ...]; got {flag!r}")
        item = rest.pop(0)
        settings.pop(item.split("=", 1)[0], None)  # the later value of a key, in its new place
        settings[item.split("=", 1)[0]] = item
    import yaml

    doc = (yaml.safe_load(params.read_text()) or {}) if params.is_file() else {}
    reference = doc.get("reference") if isinstance(doc.get("reference"), dict) else {}
    source = settings["reference.source"].split("=", 1)[1] if "reference.source" in settings else \
        str(reference.get("source", "zoo"))
    methods = doc.get("methods")
    if "methods" not in settings and isinstance(methods, list) and _labelled(zoo, source):
        methods = [str(m) for m in methods] + [e for e in DEMO_ESTIMATORS if e not in methods]
        settings["methods"] = f"methods=[{','.join(methods)}]"
    return ["exp", "run", *(x for item in settings.values() for x in ("-S", item))]


def demo(argv: list[str]) -> int:
    """``make demo``: :func:`main` on :func:`demo_argv`, params.yaml kept (:func:`params_kept`)."""
    argv = demo_argv(argv)
    print("demo: params.yaml is kept as it is; the demo's settings will be its experiment's (make show), its "
          "results the workspace's (dvc metrics show, dvc plots show); dvc exp apply <name> applies its settings",
          flush=True)
    with params_kept():
        return main(argv)  # the summary line stays the last line


#: ``make show``'s headline metrics, shown even where every experiment has the same value:
#: the keys of the DVC metric ``metrics/headline.json`` (:func:`show_keep`: each method and ``static``)
#: and, from experiments before it, every metric named ``mean_rho``.
SHOW_KEEP = r".*\.mean_rho$"
#: ... and what it never shows: DVC's columns of no interest here, the task list, the deps'
#: file hashes (their names are paths) and the metrics other than the headline.
SHOW_DROP = (r"Created|State|Executor|parent|tasks|.*/.*"
             r"|.*\.(mean_rho_.*|n_tasks|delta_.*|fraction_.*|replicate|per_task.*|.*_ci95|.*_bias)$")
_META = ("Experiment", "rev", "typ")


def show_keep(headline: Path = HEADLINE, keep: str = SHOW_KEEP) -> str:
    """``keep`` widened to the columns of the headline metric's keys (``dvc exp show`` names a
    metric by its key alone), as read from ``headline``; ``keep`` alone without that file."""
    try:
        keys = [k for k in json.loads(headline.read_text()) if isinstance(k, str)]
    except (OSError, ValueError, TypeError):
        keys = []
    return "|".join([keep, *(re.escape(k) + "$" for k in keys)])


def show_table(csv_text: str, width: int = 120, keep: str = SHOW_KEEP) -> str:
    """``dvc exp show --csv`` output as rows of params and metrics (the ones not matching
    ``keep`` first: the changed params) by columns of experiments, in blocks of experiments
    at most ``width`` characters wide."""
    import csv
    import io

    rows = list(csv.DictReader(io.StringIO(csv_text)))
    if not rows:
        return "no experiments"
    names = [c for c in rows[0] if c not in _META]
    names = [c for c in names if not re.match(keep, c)] + [c for c in names if re.match(keep, c)]
    labels = [f"{r['Experiment']} ({r['rev']})" if r.get("Experiment") and r.get("rev") else
              r.get("Experiment") or r.get("rev", "") for r in rows]
    first = max([len(n) for n in names] + [0])
    cols = [max([len(labels[i])] + [len(rows[i][n] or "") for n in names]) for i in range(len(rows))]
    blocks, block = [], []
    for i in range(len(rows)):
        if block and first + sum(cols[j] + 2 for j in block) + cols[i] + 2 > width:
            blocks.append(block)
            block = []
        block.append(i)
    blocks.append(block)
    out = []
    for block in blocks:
        out.append(" " * first + "".join(f"  {labels[i]:>{cols[i]}}" for i in block))
        out.extend(f"{n:<{first}}" + "".join(f"  {rows[i][n] or '':>{cols[i]}}" for i in block) for n in names)
        out.append("")
    return "\n".join(out).rstrip("\n")


def show(argv: list[str]) -> int:
    """``make show``: :func:`show_table` of ``dvc exp show`` (module doc)."""
    import shutil

    keep = show_keep()
    proc = subprocess.run(["dvc", "exp", "show", "--csv", "--only-changed", "--keep", keep, "--drop", SHOW_DROP,
                           "--precision", "4", *argv], capture_output=True, text=True)
    if proc.returncode:
        sys.stderr.write(proc.stdout + proc.stderr)
        return proc.returncode
    print(show_table(proc.stdout, shutil.get_terminal_size((120, 24)).columns, keep))
    return 0


def main(argv: list[str]) -> int:
    zoo = requested_zoo(argv)
    if zoo is not None:  # DVC itself would say only "[Errno 2] No such file" of zoos/<zoo>.yaml
        from modelgif.zoo.spec import ZooError, zoo_path

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
    subcommands = {"status": status, "demo": demo, "show": show}
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    sys.exit(subcommands[command](sys.argv[2:]) if command in subcommands else main(sys.argv[1:]))
