"""Time the bootstrap of issue 12: n resamples of N reference images for K models.

    python tools/bench_bootstrap.py [--n 1000] [--k 17] [--images 100] [--dims 128]

Random per-image contributions (field methods) and random features (set-level methods, D values
per image; 128 = the mini encoders' 8·4·4 outputs); prints seconds per method. The field
methods' cost does not depend on the field size: their contributions are computed once.
``make bench`` (``benchmarks/performance.py``, section ``bootstrap``) times the set-level methods the
same way beside one field of the same shape, as a ratio; this script is the quick look.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from modelgif.compare.resample import bootstrap_field_distances, bootstrap_set_distances, resample_indices
from modelgif.score.bootstrap import summarize


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000, help="resamples")
    ap.add_argument("--k", type=int, default=17, help="models")
    ap.add_argument("--images", type=int, default=100, help="reference images N")
    ap.add_argument("--dims", type=int, default=128, help="feature values per image (set-level methods)")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    k, n = args.k, args.images
    idx = resample_indices(n, args.n, seed=0)
    truth = rng.random((k, k))
    contrib = rng.random((n, k, k))
    contrib = (contrib + contrib.transpose(0, 2, 1)) / 2
    feats = [rng.standard_normal((n, args.dims)) for _ in range(k)]

    def timed(label, fn):
        t0 = time.perf_counter()
        out = fn()
        print(f"{label:34s} {time.perf_counter() - t0:8.2f} s")
        return out

    print(f"n = {args.n} resamples, K = {k} models, N = {n} images, D = {args.dims}")
    field = timed("field method: resampled distances", lambda: bootstrap_field_distances(contrib, idx))
    timed("  scores (summarize, paired)", lambda: summarize(contrib.mean(0), field, truth, reference=field))
    for label, method, kw in (("cka (biased)", "cka", {}), ("cka (debiased)", "cka", {"debiased": True}),
                              ("rsa", "rsa", {}), ("dds (default, refit)", "dds", {}),
                              ("dds (refit=False)", "dds", {"refit": False})):
        timed(label, lambda: bootstrap_set_distances(method, feats, idx, **kw))


if __name__ == "__main__":
    main()
