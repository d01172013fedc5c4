"""Convert the Taskonomy authors' pickled tables to plain JSON, once.

    python tools/convert_taskonomy_tables.py ../shared/taskonomy-results modelgif/data/taskonomy

Reads ``affinities/*.pkl`` and ``winrates/*.pkl`` (dicts ``"<source>__<target>" -> float``)
and writes ``<name>.json`` with every key and its value at full float64 precision
(``repr`` round-trips). Run by hand; nothing loads a pickle at run time.
"""

import json
import pickle
import sys
from pathlib import Path

SOURCE = ("StanfordVL/taskonomy, results/{kind}/{name}.pkl at commit "
          "9f814867b5fe4165860862211e8e99b0f200144d (Zamir et al., CVPR 2018)")


def main(src: str, dest: str) -> None:
    out = Path(dest)
    out.mkdir(parents=True, exist_ok=True)
    for pkl in sorted(Path(src).glob("*/*.pkl")):
        with open(pkl, "rb") as f:
            table = pickle.load(f)
        doc = {
            "name": pkl.stem,
            "source": SOURCE.format(kind=pkl.parent.name, name=pkl.stem),
            "table": {k: float(table[k]) for k in sorted(table)},
        }
        (out / f"{pkl.stem}.json").write_text(json.dumps(doc, indent=0) + "\n")
        print(f"{pkl} -> {out / (pkl.stem + '.json')} ({len(table)} entries)")


if __name__ == "__main__":
    main(*sys.argv[1:3])
