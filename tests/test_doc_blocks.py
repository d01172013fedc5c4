"""Every code block of README.md and docs/*.md works as written (issue 21.6), read from the text
itself.

A fence carries its language: ``python`` blocks are run (slow tier: in a temporary folder whose
``data/`` is the repository's, on the CPU, offline); ``bash`` / ``sh`` / ``console`` blocks are
checked command by command (fast tier: every ``make`` target and variable exists, every script
and repository path exists or is a pipeline output of ``dvc.yaml``, every ``-S key`` is a
setting of ``params.yaml``, every ``MODELGIF_*`` variable is read by the code; slow tier: every
option a command passes is in that command's ``--help``); ``text`` blocks (diagrams, printed
output) are not code. A block that cannot run here says so in the page, on the line before
its fence: ``<!-- not run: <why> -->``; such blocks are counted and listed below
(:data:`NOT_RUN`), so none is left out silently. Shell blocks are never run (they start
pipelines, GPUs, clusters): they are all checked as above, marked or not.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]

FENCE = re.compile(r"^\s*(```|~~~)\s*(\S*)\s*$")
NOT_RUN_MARK = re.compile(r"^\s*<!--\s*not run:\s*(.+?)\s*-->\s*$")
SHELL = {"bash", "sh", "console", "shell"}
LANGUAGES = SHELL | {"python", "text"}

#: The blocks that are not run, per page, with the reason the page gives: a new one is a
#: conscious change of this list.
NOT_RUN = {
    ("docs/library.md", "needs the Taskonomy checkpoints (data/checkpoints, downloaded by `make repro`)"),
    ("docs/methods.md", "a sketch of the diff, its body yours (tests/test_registry.py registers and runs a complete method)"),
}
#: Commands a block may use that are not the project's (their options are not checked).
SYSTEM_COMMANDS = {"column", "scontrol", "head", "cat", "ls", "git"}
#: Shell words that start or end a compound command; the rest of their line is checked as a command.
SHELL_WORDS = {"for", "do", "done", "then", "fi", "if"}


@dataclass(frozen=True)
class Block:
    page: str  # relative to the repository root
    line: int  # of the opening fence
    lang: str
    text: str
    not_run: str | None  # the reason given by a `<!-- not run: ... -->` line before the fence

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"


def blocks(path: Path, root: Path = ROOT) -> list[Block]:
    """Every fenced block of ``path``, with its language and ``not run`` mark."""
    lines = path.read_text().splitlines()
    out, i = [], 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        start, lang = i, match.group(2)
        i += 1
        body = []
        while i < len(lines) and not (FENCE.match(lines[i]) and FENCE.match(lines[i]).group(2) == ""):
            body.append(lines[i])
            i += 1
        before = next((lines[j] for j in range(start - 1, -1, -1) if lines[j].strip()), "")
        mark = NOT_RUN_MARK.match(before)
        out.append(Block(str(path.relative_to(root)), start + 1, lang, "\n".join(body) + "\n",
                         mark.group(1) if mark else None))
        i += 1
    return out


ALL = [b for page in PAGES for b in blocks(page)]
PYTHON = [b for b in ALL if b.lang == "python"]
SHELL_BLOCKS = [b for b in ALL if b.lang in SHELL]


def without_substitutions(line: str) -> str:
    """``line`` with each ``$( ... )`` (balanced parentheses) replaced by the word ``SUBST``."""
    out, i = [], 0
    while (start := line.find("$(", i)) >= 0:
        depth, j = 0, start + 1
        while j < len(line):
            depth += {"(": 1, ")": -1}.get(line[j], 0)
            if depth == 0:
                break
            j += 1
        out.append(line[i:start] + "SUBST")
        i = j + 1
    return "".join(out) + line[i:]


def commands(block: Block) -> list[list[str]]:
    """The commands of a shell block, as words: continuation lines joined, comments dropped,
    ``;`` / ``&&`` / ``|`` split, the ``$ `` prompt of a ``console`` block removed (its other
    lines are output), ``for``/``do``/``done`` and leading ``VAR=value`` words kept."""
    text = block.text.replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        if block.lang == "console":
            if not line.startswith("$ "):
                continue
            line = line[2:]
        if line.lstrip().startswith("#"):
            continue
        lexer = shlex.shlex(without_substitutions(line), posix=True, punctuation_chars=";&|")
        lexer.whitespace_split, lexer.commenters = True, "#"
        words: list[str] = []
        for word in lexer:
            if set(word) <= set(";&|"):
                out.append(words)
                words = []
            else:
                words.append(word)
        out.append(words)
    return [w for w in out if w]


def makefile() -> tuple[set[str], set[str]]:
    """The Makefile's targets and variables."""
    text = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([A-Za-z][\w-]*)\s*:(?!=)", text, re.M))
    variables = set(re.findall(r"^([A-Z_]+)\s*[?:]?=", text, re.M))
    return targets, variables


def pipeline_outputs() -> list[re.Pattern]:
    """Every path of ``dvc.yaml`` and ``mini/dvc.yaml`` (outs, deps, metrics, plots), ``${...}``
    standing for one path component."""
    paths = set()
    for name, prefix in (("dvc.yaml", ""), ("mini/dvc.yaml", "mini/")):
        text = (ROOT / name).read_text()
        paths.update(re.findall(r"(?:^|\s|-\s)((?:data|metrics|mini|dvc_plots)/[\w${}./@-]+)", text, re.M))
    return [re.compile(re.sub(r"\\\$\\\{[^}]*\\\}", "[^/]+", re.escape(p.rstrip(":")))) for p in paths]


def written_by_blocks() -> set[str]:
    """Files a page's python block says it is (a first line ``# name.py: ...``)."""
    return {m.group(1) for b in PYTHON if (m := re.match(r"#\s*([\w./-]+\.py):", b.text))}


def params_keys() -> set[str]:
    def walk(d, prefix=""):
        for k, v in d.items():
            yield prefix + k
            if isinstance(v, dict):
                yield from walk(v, prefix + k + ".")

    return set(walk(yaml.safe_load((ROOT / "params.yaml").read_text())))


REPO_PATH = re.compile(r"^(?:\./)?((?:data|metrics|docs|stages|tools|zoos|mini|benchmarks|modelgif|tests)/\S*)$")


def check_path(word: str, outputs, created) -> str | None:
    """None if ``word`` (a repository path) exists, is a pipeline path or is made by a block."""
    path = REPO_PATH.match(word).group(1).rstrip("/")
    if (ROOT / path).exists() or path in created:
        return None
    if "$" in path and any(ROOT.glob(re.sub(r"\$\{?\w+\}?", "*", path))):  # a loop's files
        return None
    concrete = re.sub(r"\$\{?\w+\}?", "X", path)  # a shell variable stands for one component
    if any(p.fullmatch(concrete) or p.fullmatch(path) for p in outputs):
        return None
    return f"{word}: no such file, and no pipeline output"


def check_command(words: list[str], targets, variables, keys, outputs, created, code_text) -> list[str]:
    """What is wrong with one command (an empty list: nothing)."""
    problems = []
    while words and words[0] in SHELL_WORDS:
        words = words[1:] if words[0] != "for" else []  # `for x in $(...)`: the loop header
    while words and re.match(r"^[A-Za-z_]\w*=", words[0]):  # VAR=value before the command
        name = words[0].split("=")[0]
        if name.startswith("MODELGIF_") and name not in code_text:
            problems.append(f"{name}: no code reads it")
        words = words[1:]
    if not words or words[0] == "SUBST":
        return problems
    cmd, args = words[0], words[1:]
    for word in args:
        if word.endswith(".py") and cmd in ("python", "python3", "torchrun", "srun"):
            continue  # the script: checked below
        if REPO_PATH.match(word) and (why := check_path(word, outputs, created)):
            problems.append(why)
    if cmd == "make":
        for a in args:
            if "=" in a:
                if a.split("=")[0] not in variables:
                    problems.append(f"make {a}: no such Makefile variable")
            elif not a.startswith("-") and a not in targets:
                problems.append(f"make {a}: no such Makefile target")
    elif cmd in ("dvc", ".venv/bin/dvc"):
        for flag, value in zip(args, args[1:]):
            if flag in ("-S", "--set-param"):
                key = value.split("=")[0]
                if key not in keys:
                    problems.append(f"dvc ... -S {value}: {key} is not a setting of params.yaml")
    elif cmd in ("python", "python3", "torchrun", "srun"):
        scripts = [a for a in args if a.endswith(".py")]
        if not scripts and args[:1] != ["-c"] and cmd != "srun":
            problems.append(f"{' '.join(words)}: no script")
        for s in scripts:
            if not (ROOT / s).is_file() and s not in created:
                problems.append(f"{s}: no such script")
    elif cmd == "source":
        if args[:1] != [".venv/bin/activate"] or "VENV ?= .venv" not in (ROOT / "Makefile").read_text():
            problems.append(f"source {' '.join(args)}: not the venv the Makefile creates")
    elif cmd not in SYSTEM_COMMANDS and not cmd.startswith("#"):
        problems.append(f"{cmd}: a command this test does not know (add a rule for it)")
    return problems


def code_text() -> str:
    return "\n".join(p.read_text() for d in ("modelgif", "stages", "tools") for p in (ROOT / d).rglob("*.py"))


def test_blocks_are_found_and_the_not_run_ones_counted():
    """The reader itself: languages, marks, and the list of blocks not run."""
    assert all(b.lang in LANGUAGES for b in ALL), [(b.id, b.lang) for b in ALL if b.lang not in LANGUAGES]
    assert {(b.page, b.not_run) for b in ALL if b.not_run} == NOT_RUN
    assert len([b for b in ALL if b.not_run]) == len(NOT_RUN)
    assert any(b.page == "README.md" and b.lang == "python" and not b.not_run for b in ALL), \
        "the README's library example must be run"
    # at least the README's example, library.md's copy of it and own-zoo's make_my_zoo.py run
    assert len([b for b in PYTHON if not b.not_run]) >= 3


def test_the_reader_on_a_made_up_page(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("text\n\n```bash\nmake demo  # the demo\nMODELGIF_X=1 dvc repro && make nope\n```\n\n"
                    "<!-- not run: needs a GPU -->\n```python\nimport torch\n```\n~~~text\nout\n~~~\n")
    found = blocks(page, tmp_path)
    assert [(b.line, b.lang, b.not_run) for b in found] == [(3, "bash", None), (9, "python", "needs a GPU"),
                                                             (12, "text", None)]
    assert commands(found[0]) == [["make", "demo"], ["MODELGIF_X=1", "dvc", "repro"], ["make", "nope"]]
    assert without_substitutions('for t in $(python -c "print(f(1))"); do h=$(a | b) x') == \
        "for t in SUBST; do h=SUBST x"
    targets, variables = makefile()
    args = (targets, variables, params_keys(), pipeline_outputs(), set(), code_text())
    assert check_command(["make", "demo", "DEMO_ZOO=mini_random"], *args) == []
    assert check_command(["make", "nope"], *args) == ["make nope: no such Makefile target"]
    assert check_command(["make", "NOPE=1"], *args) == ["make NOPE=1: no such Makefile variable"]
    assert check_command(["MODELGIF_X=1", "dvc", "exp", "run", "-S", "field.n_step=3"], *args) == [
        "MODELGIF_X: no code reads it", "dvc ... -S field.n_step=3: field.n_step is not a setting of params.yaml"]
    assert check_command(["python", "tools/nope.py", "--out", "data/fields/$task.npy"], *args) == [
        "tools/nope.py: no such script"]
    assert check_command(["column", "-t", "metrics/nope.csv"], *args) == [
        "metrics/nope.csv: no such file, and no pipeline output"]
    assert check_command(["rm", "-rf", "x"], *args) == ["rm: a command this test does not know (add a rule for it)"]


@pytest.mark.parametrize("block", SHELL_BLOCKS, ids=lambda b: b.id)
def test_shell_block_names_what_exists(block):
    targets, variables = makefile()
    args = (targets, variables, params_keys(), pipeline_outputs(), written_by_blocks(), code_text())
    problems = [p for words in commands(block) for p in check_command(words, *args)]
    assert not problems, "\n".join(problems)


def _help_calls():
    """(command prefix, options used) for every project command of the shell blocks."""
    calls: dict[tuple[str, ...], set[str]] = {}
    for block in SHELL_BLOCKS:
        for words in commands(block):
            while words and (words[0] in SHELL_WORDS or re.match(r"^[A-Za-z_]\w*=", words[0])):
                words = words[1:] if words[0] != "for" else []
            if not words:
                continue
            if words[0] in ("dvc", ".venv/bin/dvc"):
                sub = tuple(w for w in words[1:3] if not w.startswith("-") and "=" not in w)
                sub = sub[:1] if sub[:1] in (("repro",), ("commit",)) else sub
                opts = {w.split("=")[0] for w in words[1:] if w.startswith("-")}
                calls.setdefault(("dvc", *sub), set()).update(opts)
            elif words[0] in ("python", "torchrun", "srun"):
                script = next((w for w in words if w.endswith(".py")), None)
                if script and (ROOT / script).is_file():
                    rest = words[words.index(script) + 1:]
                    calls.setdefault(("python", script), set()).update(
                        w.split("=")[0] for w in rest if w.startswith("--"))
    return sorted(calls.items())


@pytest.mark.slow
@pytest.mark.parametrize("call", _help_calls(), ids=lambda c: " ".join(c[0]))
def test_shell_block_options_are_in_the_commands_help(call):
    (prefix, options) = call
    argv = [sys.executable, *prefix[1:]] if prefix[0] == "python" else [str(Path(sys.executable).parent / "dvc"),
                                                                          *prefix[1:]]
    proc = subprocess.run([*argv, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "COLUMNS": "200", "DVC_NO_ANALYTICS": "1"})
    assert proc.returncode == 0, proc.stderr
    missing = [o for o in options if not re.search(rf"(?<![\w-]){re.escape(o)}(?![\w-])", proc.stdout)]
    assert not missing, f"{' '.join(prefix)} --help does not list {missing}"


@pytest.mark.slow
@pytest.mark.parametrize("block", [b for b in PYTHON if not b.not_run], ids=lambda b: b.id)
def test_python_block_runs_as_written(block, tmp_path):
    """In a fresh folder whose ``data/`` is the repository's (the README's example reads the
    committed mini encoders and tables from there), with no GPU and no network proxy to reach."""
    (tmp_path / "data").symlink_to(ROOT / "data")
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(ROOT), "MODELGIF_DEVICE": "cpu",
           "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9", "NO_PROXY": ""}
    proc = subprocess.run([sys.executable, "-"], input=block.text, cwd=tmp_path, capture_output=True, text=True,
                          timeout=600, env=env)
    assert proc.returncode == 0, f"{block.id} failed:\n{proc.stderr[-3000:]}"
    if "print(" in block.text:
        assert proc.stdout.strip(), f"{block.id} printed nothing"
    # what a block says it writes, it wrote
    for name in re.findall(r'Path\("([\w./-]+\.(?:yaml|csv))"\)\.write_text', block.text):
        assert (tmp_path / name).is_file(), name
