"""The documentation as a newcomer meets it (issue 21.1): README.md is a front door (at most
12 KB, the two set-up commands on its first screen) and the rest lives in docs/; every relative
link of README.md and docs/*.md resolves (the file, and for ``#anchor`` links into a ``.md``
file a heading of it, by GitHub's slug rule); no line names a particular machine's absolute
paths."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
README_MAX_BYTES = 12 * 1024
FIRST_SCREEN_LINES = 30
PAGES = [README, *sorted((ROOT / "docs").rglob("*.md"))]

FENCE = re.compile(r"^\s*(```|~~~)")
INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1")
# [text](target) and ![alt](target); the text may hold one level of brackets (an image inside a link)
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^()\s<>]+(?:\([^()\s]*\))?)>?(?:\s+[\"'][^\"']*[\"'])?\s*\)")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
EXTERNAL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")  # http:, https:, mailto:, ...
MACHINE_PATH = re.compile(r"(?<![\w.~/-])/(?:work|root|home)/")


def prose_lines(text: str):
    """(line number, line) outside fenced code blocks."""
    fenced = False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            yield number, line


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: markdown links reduced to their text, lowercase, every
    character but letters, digits, spaces, '-' and '_' dropped, spaces to '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every anchor GitHub gives the headings of ``path`` (repeated headings get -1, -2, ...)."""
    seen: dict[str, int] = {}
    out = set()
    for _, line in prose_lines(path.read_text()):
        match = HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def links(path: Path):
    """(line number, target) of every markdown link and image outside code."""
    for number, line in prose_lines(path.read_text()):
        for match in LINK.finditer(INLINE_CODE.sub("", line)):
            yield number, match.group(1)


def broken_links(path: Path, root: Path = ROOT) -> list[str]:
    problems = []
    for number, target in links(path):
        if EXTERNAL.match(target) or target.startswith("//"):
            continue
        file_part, _, anchor = target.partition("#")
        where = f"{path.relative_to(root)}:{number}: {target}"
        if file_part.startswith("/"):
            problems.append(f"{where}: an absolute link")
            continue
        dest = (path.parent / unquote(file_part)).resolve() if file_part else path
        if not dest.exists():
            problems.append(f"{where}: no such file")
        elif anchor and dest.suffix == ".md" and unquote(anchor) not in anchors(dest):
            problems.append(f"{where}: no heading #{anchor} in {dest.relative_to(root)}")
    return problems


def machine_paths(path: Path, root: Path = ROOT) -> list[str]:
    return [f"{path.relative_to(root)}:{number}: {line.strip()}"
            for number, line in enumerate(path.read_text().splitlines(), 1) if MACHINE_PATH.search(line)]


def test_slug_follows_githubs_rule():
    assert slug("Methods side by side, with uncertainty") == "methods-side-by-side-with-uncertainty"
    assert slug("What `make repro` needs") == "what-make-repro-needs"
    assert slug("Mini-Taskonomy: an offline zoo with measured affinities") == \
        "mini-taskonomy-an-offline-zoo-with-measured-affinities"
    assert slug("Running on GPUs: one GPU, eight, several nodes") == "running-on-gpus-one-gpu-eight-several-nodes"
    assert slug("A chosen GPU, batch size") == "a-chosen-gpu-batch-size"
    assert slug("snake_case and ρ (Spearman)") == "snake_case-and-ρ-spearman"


def test_checks_catch_what_they_should(tmp_path):
    """The checks themselves: a missing file, a missing heading and a machine path are found."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs/a.md").write_text("# A page\n\n## Some section\n")
    page = tmp_path / "README.md"
    page.write_text("[ok](docs/a.md#some-section) [self](#top) [web](https://example.org/x)\n"
                    "# Top\n[gone](docs/b.md) [bad anchor](docs/a.md#nope) `[code](nowhere.md)`\n"
                    "```\n[in a fence](nowhere.md)\n```\nstored in /work/me/data\n")
    problems = broken_links(page, tmp_path)
    assert len(problems) == 2 and "docs/b.md: no such file" in problems[0] and "#nope" in problems[1]
    assert machine_paths(page, tmp_path) == ["README.md:7: stored in /work/me/data"]


def test_readme_is_a_front_door():
    size = len(README.read_bytes())
    assert size <= README_MAX_BYTES, f"README.md is {size} bytes, more than {README_MAX_BYTES}"
    first_screen = "\n".join(README.read_text().splitlines()[:FIRST_SCREEN_LINES])
    for command in ("make repro", "make test", "make demo"):
        assert command in first_screen, f"{command!r} is not in README.md's first {FIRST_SCREEN_LINES} lines"


def test_readme_links_every_docs_page():
    linked = {(README.parent / target.partition("#")[0]).resolve() for _, target in links(README)}
    pages = set(p.resolve() for p in (ROOT / "docs").glob("*.md"))
    assert pages and not pages - linked, sorted(str(p.relative_to(ROOT)) for p in pages - linked)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page):
    assert not broken_links(page), "\n".join(broken_links(page))


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_machine_paths(page):
    assert not machine_paths(page), "\n".join(machine_paths(page))
