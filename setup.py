"""Build hook: copy the mini-Taskonomy tables into the wheel as package data.

Their canonical place is ``data/mini/tables`` (an output of ``mini/dvc.yaml``); a built
package carries a copy at ``modelgif/data/mini/tables``, where
:func:`modelgif._resources.mini_tables_dir` finds it. Everything else is in pyproject.toml.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

MINI_TABLES = Path(__file__).resolve().parent / "data" / "mini" / "tables"


class BuildPyWithMiniTables(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads data/mini/tables from the checkout
        dest = Path(self.build_lib) / "modelgif" / "data" / "mini" / "tables"
        dest.mkdir(parents=True, exist_ok=True)
        for table in sorted(MINI_TABLES.rglob("*.json")):  # the mean tables and readouts/ (the replicates)
            target = dest / table.relative_to(MINI_TABLES)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(table, target)


setup(cmdclass={"build_py": BuildPyWithMiniTables})
