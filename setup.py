"""Build hook: copy the mini-Taskonomy tables into the wheel as package data.

Their canonical place is ``data/mini/tables`` (build 0, an output of ``mini/dvc.yaml``) and
``data/mini/tables_seed<b>`` (the other committed builds, :mod:`modelgif.zoo.mini_builds`); a built
package carries copies at ``modelgif/data/mini/tables[_seed<b>]``, where
:func:`modelgif._resources.mini_tables_dir` finds them. Everything else is in pyproject.toml.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

MINI_DATA = Path(__file__).resolve().parent / "data" / "mini"


class BuildPyWithMiniTables(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads data/mini/tables from the checkout
        dest = Path(self.build_lib) / "modelgif" / "data" / "mini"
        for folder in sorted([MINI_DATA / "tables", *MINI_DATA.glob("tables_seed*")]):  # one per build
            for table in sorted(folder.rglob("*.json")):  # the mean tables and readouts/ (the replicates)
                target = dest / table.relative_to(MINI_DATA)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(table, target)


setup(cmdclass={"build_py": BuildPyWithMiniTables})
