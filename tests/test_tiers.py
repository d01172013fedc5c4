"""The test tiers (issue 21.7): `make test` runs everything, `make test-fast` (`-m "not slow"`)
the in-process unit tests, and a fast-tier test that starts a project process fails
(tests/conftest.py)."""

from __future__ import annotations

import inspect
import sys
import tomllib
from pathlib import Path

import conftest
import pytest

ROOT = Path(__file__).resolve().parents[1]
pytest_plugins = ["pytester"]


def test_project_processes_are_told_from_other_programs():
    project_process = conftest.project_process
    assert project_process([sys.executable, "-c", "pass"]) == f"{sys.executable} -c pass"
    assert project_process(["/usr/bin/python3", "stages/field.py"]) == "/usr/bin/python3 stages/field.py"
    assert project_process(["dvc", "repro"]) == "dvc repro"
    assert project_process("git status --porcelain") == "git status --porcelain"  # a shell-style string
    assert project_process([Path("/x/bin/torchrun"), "--standalone"]) == "/x/bin/torchrun --standalone"
    assert project_process(["make", "-n", "show"]) == "make -n show"
    assert project_process(["mount", "-t", "tmpfs"]) is None  # a fixture's helper, not a project process
    assert project_process(["sudo"]) is None and project_process([]) is None


def test_the_tiers_are_declared_where_make_and_pytest_read_them():
    markers = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["markers"]
    assert [m.split(":")[0] for m in markers] == ["slow"] and "subprocess, dvc and pipeline tests" in markers[0]
    makefile = (ROOT / "Makefile").read_text()
    assert "\ntest: install\n\tpython -m pytest -ra\n" in makefile
    assert '\ntest-fast: install\n\tpython -m pytest -ra -m "not slow"\n' in makefile


@pytest.mark.slow  # the inner tests start a Python process
def test_a_fast_test_that_starts_a_process_fails_and_a_slow_one_passes(pytester):
    source = inspect.getsource(conftest)
    guard = source[source.index("#: Programs whose start"):]
    pytester.makeconftest("import os, subprocess, sys\nfrom pathlib import Path\nimport pytest\n\n" + guard)
    pytester.makepyfile(test_inner="""
        import subprocess, sys
        import pytest

        def test_fast_but_starts_python():
            subprocess.run([sys.executable, "-c", "pass"], check=True)

        @pytest.mark.slow
        def test_slow_and_starts_python():
            subprocess.run([sys.executable, "-c", "pass"], check=True)

        def test_fast_and_runs_another_program():
            subprocess.run(["true"], check=True)
        """)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-W", "ignore::pytest.PytestUnknownMarkWarning")
    result.assert_outcomes(passed=3, errors=1)
    result.stdout.fnmatch_lines(["*test_fast_but_starts_python*", "*this test is in the fast tier but started 1 process(es)*"
                                 "mark it @pytest.mark.slow*"])
