"""Benchmark: field throughput, affinity memory, and what precision and sketching do to distances.

    python benchmarks/performance.py                  # or: make bench
    python benchmarks/performance.py --device cuda    # auto (default): CUDA when present, else CPU
    python benchmarks/performance.py --quick          # a smoke run: small sizes, one repeat, no JSON
    python benchmarks/performance.py --device cuda --full                        # make bench-gpu (<= 6 min, one H200)
    python benchmarks/performance.py --device cpu --full --tiny --sections affinity_17   # its dry run on a CPU

Prints markdown tables and writes them, with every number and the machine, to
``benchmarks/results-<device>.json`` (``--out`` to change). Sections:

1. Throughput, in path points per second, of a randomly initialised TaskonomyEncoder
   (ResNet-50 trunk) at 64 and 128 px, 50 path steps, for each precision: float32, tf32 (on
   the CPU: float32 arithmetic in channels_last, as TF32 exists only on CUDA) and bf16:
   - ``field``: :func:`modelgif.gradient_field` at its default batching
     (:func:`modelgif.field.gradients.default_batch_size`: 128 path points per pass on the CPU, i.e. two
     images' 50 points = 100; 1024 on CUDA, i.e. 1000), target selection included;
   - ``field→file``: the field stage's path: :func:`modelgif.field.gradients.iter_gradient_field` and
     :func:`modelgif.field.gradients.write_chunks` into a float16 :class:`modelgif.io.storage.FieldWriter`;
   - ``loop``: shaped like the original research code: one image at a time, its target chosen
     by its own forward pass, its 50 path points in one pass, its field copied to the host;
   - ``ceiling``: the encoder's plain forward plus input-gradient pass on a batch of the
     field's pass size, nothing else.
   Measurements are interleaved (ceiling, field, field→file, loop) and repeated; ratios are
   medians of the per-repeat ratios, so a slow phase of the machine hits all four alike. On
   the CPU the process first calls :func:`modelgif.field.gradients.keep_freed_cpu_memory`, as the field
   stage does; it speeds up all four alike.
   GFLOP/s come from ``torch.utils.flop_counter.FlopCounterMode`` counts (convolutions and
   matrix products of the passes; the field adds its target-selection forward passes)
   divided by the median times, beside the machine's measured matrix-multiply rate in the
   same precision (the better of ``torch.matmul`` and a 1×1 convolution; both are kept).
2. ``affinity_matrix`` peak resident memory (VmHWM of a fresh process per configuration) and time for K = 8 fields of 16 steps × 64·64 values, stored float16, at
   N = 64, 256, 1024 images, against loading every field whole into memory first.
3. Distances from opt-in precisions and from sketched fields against exact float32 fields,
   for 8 random-init encoders with correlated seeds (the construction of tests/test_sketch.py):
   Spearman over the 28 distinct pairs, and the largest and mean relative error.
4. The field stage's peak resident memory (a fresh process, ``benchmarks/peak_rss.py``) at two
   N, 10× apart, for a void target (an all-zero field) and an ordinary one: it must not grow
   with N (``checks.field_stage_peak_rss_ratio_10x_n`` ≤ 1.25).
5. ``affinity_matrix`` over 17 fields of 50 × 128·128 values (float16 storage) for each
   backend (numpy, torch on the CPU, torch on CUDA when present), extrapolated to N = 1000.
6. ``--full``: one real-size field (1000 × 50 at 128 px, random-init encoder) per precision
   through the field stage (``stages/field.py`` in a fresh process: its batching, its writer),
   wall time, peak host and GPU memory, extrapolated to 17 tasks beside the ceiling and the
   one-image loop of section 1; then the 17-field affinity on that field. ``--tiny`` shrinks
   it to 4 images × 4 steps at 32 px: a dry run of the GPU script on a CPU.
7. ``bootstrap``: the set-level methods' bootstrap (CKA, RSA, DDS as the pipeline runs them,
   1000 resamples, :func:`modelgif.compare.resample.bootstrap_set_distances` on the device) beside one
   field of the same shape in the same run, as a ratio: the mini zoo's shape (17 × 100 images,
   128 features, a 64 px field) and Taskonomy's (17 × 1000 images, 512 features, a 1000 × 50
   field at 128 px, extrapolated from 4 images on the CPU; see :func:`bootstrap_cost`);
   ``--quick``: the mini shape only, small; ``--tiny``: both, small.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import modelgif  # noqa: E402
from modelgif.field.gradients import (default_batch_size, iter_gradient_field, keep_freed_cpu_memory,  # noqa: E402
                            precision_mode, write_chunks)
from modelgif.field.sketch import GaussianSketch  # noqa: E402
from modelgif.io.storage import FieldWriter, save_field  # noqa: E402
from modelgif.field.targets import target_selector  # noqa: E402
from modelgif.zoo.taskonomy import build_encoder  # noqa: E402

N_STEPS = 50


# --------------------------------------------------------------------------- machine


def machine_info(device: torch.device) -> dict:
    cpu, fields = platform.processor() or "unknown", {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("model name", "cpu family", "model", "cpu MHz") and key not in fields:
                fields[key] = value.strip()
        cpu = fields.get("model name", cpu)
    except OSError:
        pass
    flags = ""
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        pass
    try:
        mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        mem_gb = None
    info = {
        "cpu": cpu,
        "cpu_family_model_mhz": [fields.get("cpu family"), fields.get("model"), fields.get("cpu MHz")],
        "cpu_flags": [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f" {f}" in flags],
        "cpu_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "memory_gb": round(mem_gb, 1) if mem_gb else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "device": str(device),
        "load_average_at_start": list(os.getloadavg()),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
        info["cudnn"] = torch.backends.cudnn.version()
    try:
        info["git_commit"] = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                            check=True).stdout.strip()
        # tracked code changed since that commit (earlier results files, untracked, do not count)
        info["git_dirty"] = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--",
                                                 "modelgif", "benchmarks", "stages"], cwd=ROOT, capture_output=True,
                                                text=True).stdout.strip())
    except (OSError, subprocess.CalledProcessError):
        pass
    return info


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device: torch.device) -> float:
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t0


def matmul_rate(device: torch.device, precision: str, quick: bool) -> dict:
    """Measured GFLOP/s of matrix products in ``precision`` (medians of repeats): ``matmul``, a
    square ``torch.matmul`` (MKL or cuBLAS), and ``conv1x1``, the same kind of product as a
    1×1 convolution on a channels_last input (oneDNN or cuDNN, the libraries the encoder's
    passes use; on AMD CPUs MKL's sgemm takes a slower path than oneDNN). ``best`` is the larger."""
    n = 8192 if device.type == "cuda" else (1024 if quick else 2048)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    g = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(n, n, generator=g).to(device=device, dtype=dtype)
    b = torch.randn(n, n, generator=g).to(device=device, dtype=dtype)
    batch, side, ch = (64, 64, 2048) if device.type == "cuda" else (16, 32, 1024)
    x = torch.randn(batch, ch, side, side, generator=g).to(device=device, dtype=dtype)
    x = x.contiguous(memory_format=torch.channels_last)
    w = torch.randn(ch, ch, 1, 1, generator=g).to(device=device, dtype=dtype)
    repeats = 3 if quick else 7
    with torch.no_grad(), precision_mode("tf32" if precision == "tf32" else "float32", device):
        a @ b
        mm = 2 * n**3 / statistics.median(_timed(lambda: a @ b, device) for _ in range(repeats)) / 1e9
        torch.nn.functional.conv2d(x, w)
        conv = 2 * batch * side * side * ch * ch / statistics.median(
            _timed(lambda: torch.nn.functional.conv2d(x, w), device) for _ in range(repeats)) / 1e9
    return {"matmul": mm, "conv1x1": conv, "best": max(mm, conv)}


# --------------------------------------------------------------------------- 1. throughput


def _original_loop(model, images, baselines, precision, device):
    """One image at a time, its own target, its 50 path points in one pass, copied to the host."""
    alphas, weights = modelgif.nodes_and_weights("gausslegendre", N_STEPS)
    alpha = torch.as_tensor(alphas, dtype=images.dtype, device=device).view(-1, 1, 1, 1)
    weight = torch.as_tensor(weights, dtype=images.dtype, device=device).view(-1, 1, 1, 1)
    out = []
    for i in range(images.shape[0]):
        x, xb = images[i : i + 1], baselines[i : i + 1]
        with torch.no_grad():
            sel = target_selector(model(x), 1)
        z = (xb + alpha * (x - xb))
        if precision != "float32":
            z = z.contiguous(memory_format=torch.channels_last)
        z = z.requires_grad_(True)
        with torch.enable_grad(), precision_mode(precision, device):
            t = (model(z).float() * sel).sum()
            (grad,) = torch.autograd.grad(t, z)
        field = ((x - xb) * (grad * weight).cumsum(0)).mean(1).reshape(N_STEPS, -1)
        out.append(field.cpu())
    return out


def _ceiling_pass(model, z, precision, device):
    zz = z.detach().requires_grad_(True)
    with torch.enable_grad(), precision_mode(precision, device):
        out = model(zz)
        (g,) = torch.autograd.grad(out.float().sum(), zz)
    return g


def throughput(device, precisions, sizes, repeats, quick, tmp: Path, rates) -> list[dict]:
    torch.manual_seed(0)
    model = build_encoder("normal").to(device)
    batch = default_batch_size(device)
    per_chunk = max(1, batch // N_STEPS)
    points_per_pass = per_chunk * N_STEPS
    rows = []
    for precision in precisions:
        for px in sizes:
            n_chunks = 4 if device.type == "cuda" else (2 if px <= 64 else 1)
            n_images = per_chunk * n_chunks
            g = torch.Generator().manual_seed(px)
            images = (torch.rand(n_images, 3, px, px, generator=g) * 2 - 1).to(device)
            baselines = modelgif.make_baselines(images, "shuffled", 0)
            z = (torch.rand(points_per_pass, 3, px, px, generator=g) * 2 - 1).to(device)
            if precision != "float32":
                z = z.contiguous(memory_format=torch.channels_last)
            n_points = n_images * N_STEPS

            def field():
                return modelgif.gradient_field(model, images, baselines, n_steps=N_STEPS, precision=precision)

            def field_to_file():
                chunks = iter_gradient_field(model, images, baselines, n_steps=N_STEPS, precision=precision)
                with FieldWriter(tmp / "bench_field.npy", n_images, N_STEPS, px * px) as w:
                    write_chunks(chunks, w.write)

            def loop():
                return _original_loop(model, images, baselines, precision, device)

            def ceiling():
                for _ in range(n_chunks):
                    _ceiling_pass(model, z, precision, device)

            # warm-up (oneDNN / cuDNN choose and cache their kernels), then FLOP counts
            for fn in (ceiling, field, loop):
                fn()
            # (FlopCounterMode's module hooks refuse autograd.grad on a leaf: count with backward())
            zz = z.detach().requires_grad_(True)
            with FlopCounterMode(display=False) as fc, torch.enable_grad(), precision_mode(precision, device):
                model(zz).float().sum().backward()
            ceiling_flops = fc.get_total_flops() * n_chunks
            with FlopCounterMode(display=False) as fc, torch.no_grad():
                model(images)  # the field's target selection: one forward pass per image
            field_flops = ceiling_flops + fc.get_total_flops()

            times = {k: [] for k in ("ceiling", "field", "field_to_file", "loop")}
            for _ in range(repeats):
                for name, fn in (("ceiling", ceiling), ("field", field), ("field_to_file", field_to_file),
                                 ("loop", loop)):
                    times[name].append(_timed(fn, device))
            med = {k: statistics.median(v) for k, v in times.items()}

            def ratio(a, b):
                return statistics.median(tb / ta for ta, tb in zip(times[a], times[b]))

            rate = rates[precision]["best"]
            row = {
                "precision": precision, "px": px, "points_per_pass": points_per_pass, "images": n_images,
                "points": n_points, "repeats": repeats,
                "seconds": {k: [round(t, 4) for t in v] for k, v in times.items()},
                "field_pts_s": n_points / med["field"], "field_to_file_pts_s": n_points / med["field_to_file"],
                "loop_pts_s": n_points / med["loop"], "ceiling_pts_s": n_points / med["ceiling"],
                "field_vs_ceiling": ratio("field", "ceiling"), "field_to_file_vs_ceiling": ratio("field_to_file", "ceiling"),
                "field_vs_loop": ratio("field", "loop"),
                "gflop_per_point": ceiling_flops / n_points / 1e9,
                "field_gflop_per_point": field_flops / n_points / 1e9,
                "field_gflops": field_flops / med["field"] / 1e9, "ceiling_gflops": ceiling_flops / med["ceiling"] / 1e9,
                "matmul_gflops": rate,
            }
            rows.append(row)
            print(f"  {precision:7s} {px:4d} px: field {row['field_pts_s']:8.1f} pts/s, "
                  f"ceiling {row['ceiling_pts_s']:8.1f}, loop {row['loop_pts_s']:8.1f}, "
                  f"field/ceiling {row['field_vs_ceiling']:.3f}", flush=True)
    (tmp / "bench_field.npy").unlink(missing_ok=True)
    return rows


# --------------------------------------------------------------------------- 2. affinity memory

AFF_K, AFF_S, AFF_P = 8, 16, 64 * 64


def _write_fields(root: Path, n: int) -> list[Path]:
    """K correlated random fields (N, S, P), float16 storage, written 64 images at a time."""
    root.mkdir(parents=True, exist_ok=True)
    paths = [root / f"{k}.npy" for k in range(AFF_K)]
    rng = np.random.default_rng(n)
    writers = [FieldWriter(p, n, AFF_S, AFF_P) for p in paths]
    scales = rng.uniform(0.3, 2.0, AFF_K)
    for start in range(0, n, 64):
        m = min(64, n - start)
        base = rng.standard_normal((m, AFF_S, AFF_P), dtype=np.float32)
        for k, w in enumerate(writers):
            w.write(start, base + scales[k] * rng.standard_normal((m, AFF_S, AFF_P), dtype=np.float32))
    for w in writers:
        w.close()
    return paths


def _peak_rss_kb() -> int:
    """This process's peak resident set size (VmHWM). Not ``ru_maxrss``: Linux carries that
    over from the parent through fork and exec, so a child of a big process starts big."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _affinity_child(mode: str, folder: str) -> None:
    """Runs in a fresh process: peak RSS of one affinity computation."""
    paths = sorted(Path(folder).glob("*.npy"), key=lambda p: int(p.stem))
    base = _peak_rss_kb()
    t0 = time.perf_counter()
    if mode == "streamed":
        d = modelgif.affinity_matrix(paths)
    else:  # every field loaded whole (np.load without mmap), decoded, then compared
        fields = [load_field_whole(p) for p in paths]
        d = modelgif.affinity_matrix(fields)
    seconds = time.perf_counter() - t0
    peak = _peak_rss_kb()
    print(json.dumps({"baseline_kb": base, "peak_kb": peak, "seconds": seconds, "d01": float(d[0, 1])}))


def load_field_whole(path):
    from modelgif.io.storage import decode

    return decode(np.load(path, allow_pickle=False), np.float32)


def affinity_memory(sizes, tmp: Path) -> list[dict]:
    rows = []
    for n in sizes:
        folder = tmp / f"aff{n}"
        _write_fields(folder, n)
        for mode in ("streamed", "whole"):
            proc = subprocess.run([sys.executable, __file__, "--affinity-child", mode, str(folder)],
                                  capture_output=True, text=True, check=True)
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            row = {"mode": mode, "n_images": n, "k": AFF_K, "steps": AFF_S, "values_per_row": AFF_P,
                   "field_file_mb": sum(p.stat().st_size for p in folder.glob("*.npy")) / 2**20,
                   "peak_rss_mb": r["peak_kb"] / 1024, "rss_after_imports_mb": r["baseline_kb"] / 1024,
                   "above_imports_mb": (r["peak_kb"] - r["baseline_kb"]) / 1024, "seconds": r["seconds"],
                   "d01": r["d01"]}
            rows.append(row)
            print(f"  affinity {mode:8s} N={n:5d}: peak {row['peak_rss_mb']:8.1f} MB "
                  f"({row['above_imports_mb']:8.1f} above imports), {row['seconds']:.2f} s", flush=True)
        for p in folder.glob("*.npy"):
            p.unlink()
        folder.rmdir()
    return rows


# --------------------------------------------------------------------------- 3. distance effects

FAMILY = (0.0, 0.01, 0.02, 0.04, 0.07, 0.12, 0.2, 0.35)


def _family(device):
    """tests/test_sketch.py's construction: sqrt(1 − λ²) θ₀ + λ θ_k, conv/linear weights."""
    torch.manual_seed(100)
    base = build_encoder("normal").state_dict()
    models = []
    for k, lam in enumerate(FAMILY):
        torch.manual_seed(k)
        own = build_encoder("normal").state_dict()
        m = build_encoder("normal")
        m.load_state_dict({n: (np.sqrt(1 - lam**2) * v + lam * own[n]) if v.dim() > 1 else v for n, v in base.items()})
        models.append(m.to(device).eval())
    return models


def _compare(exact, other):
    from scipy.stats import spearmanr

    iu = np.triu_indices(exact.shape[0], 1)
    rel = np.abs(other[iu] - exact[iu]) / exact[iu]
    return {"spearman": float(spearmanr(exact[iu], other[iu])[0]), "max_rel_err": float(rel.max()),
            "mean_rel_err": float(rel.mean())}


def distance_effects(device, precisions, px, n_images, n_steps, sketch_dims, n_seeds, tmp: Path) -> dict:
    models = _family(device)
    g = torch.Generator().manual_seed(1)
    images = (torch.rand(n_images, 3, px, px, generator=g) * 2 - 1).to(device)
    baselines = modelgif.make_baselines(images, "shuffled", 0)
    t0 = time.perf_counter()
    exact_fields = [modelgif.gradient_field(m, images, baselines, n_steps=n_steps).cpu() for m in models]
    exact_seconds = time.perf_counter() - t0
    exact = modelgif.affinity_matrix(exact_fields)
    iu = np.triu_indices(len(models), 1)
    out = {"px": px, "images": n_images, "steps": n_steps, "models": len(models), "lambdas": list(FAMILY),
           "exact_distance_range": [float(exact[iu].min()), float(exact[iu].max())],
           "exact_seconds": exact_seconds, "variants": []}
    # the pipeline's own storage (float16 unit rows + norms) of exact fields
    paths = [save_field(tmp / f"exact{k}.npy", f) for k, f in enumerate(exact_fields)]
    out["variants"].append({"variant": "float32, stored float16", **_compare(exact, modelgif.affinity_matrix(paths))})
    for precision in precisions:
        if precision == "float32":
            continue
        t0 = time.perf_counter()
        fields = [modelgif.gradient_field(m, images, baselines, n_steps=n_steps, precision=precision).cpu()
                  for m in models]
        name = "tf32 (CPU: float32, channels_last)" if precision == "tf32" and device.type != "cuda" else precision
        out["variants"].append({"variant": name, "seconds": time.perf_counter() - t0,
                                **_compare(exact, modelgif.affinity_matrix(fields))})
    for d in sketch_dims:
        per_seed = []
        for seed in range(n_seeds):
            sk = GaussianSketch(px * px, d, seed)
            per_seed.append(_compare(exact, modelgif.affinity_matrix([sk(f.double()) for f in exact_fields])))
        # the stage's path once: sketched on the device while computed, stored float16
        sk_paths = [save_field(tmp / f"sk{k}.npy", modelgif.gradient_field(m, images, baselines, n_steps=n_steps,
                                                                           sketch_dim=d, sketch_seed=0))
                    for k, m in enumerate(models)]
        stored = _compare(exact, modelgif.affinity_matrix(sk_paths))
        out["variants"].append({
            "variant": f"sketch {d} ({px * px // d}× smaller)", "sketch_dim": d, "seeds": n_seeds,
            "spearman": min(r["spearman"] for r in per_seed),
            "spearman_mean": statistics.mean(r["spearman"] for r in per_seed),
            "max_rel_err": max(r["max_rel_err"] for r in per_seed),
            "mean_rel_err": statistics.mean(r["mean_rel_err"] for r in per_seed),
            "stored_float16_seed0": stored,
        })
    for p in tmp.glob("*.npy"):
        p.unlink()
    return out


# --------------------------------------------------------------------------- 4. field stage memory

STAGE = ROOT / "stages" / "field.py"


def _write_checkpoint(path: Path, seed: int = 0) -> Path:
    """A random-init TaskonomyEncoder in the official checkpoint format ({"state_dict": ...})."""
    from visualpriors.taskonomy_network import TaskonomyEncoder

    torch.manual_seed(seed)
    torch.save({"state_dict": TaskonomyEncoder(eval_only=True).state_dict()}, path)
    return path


def _write_images(path: Path, n: int, px: int, seed: int = 0) -> Path:
    np.save(path, np.random.default_rng(seed).integers(0, 256, (n, 3, px, px), dtype=np.uint8))
    return path


def run_field_stage(task: str, checkpoint: Path, images: Path, out: Path, *, zoo: str = "taskonomy",
                    target: int = 1, n_steps: int = N_STEPS, precision: str = "float32", dtype: str = "float16",
                    device: str = "cpu", env: dict | None = None) -> dict:
    """The field stage in a fresh process (``benchmarks/peak_rss.py``): wall time, its peak
    resident memory, and on CUDA its peak GPU memory (the stage prints it)."""
    rss = out.parent / f".{out.name}.rss.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "peak_rss.py"), str(STAGE), task, "--checkpoint", str(checkpoint),
           "--reference", str(images), "--target", str(target), "--n-steps", str(n_steps), "--precision", precision,
           "--dtype", dtype, "--zoo", zoo, "--out", str(out)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "MODELGIF_DEVICE": device, "MODELGIF_PEAK_RSS_OUT": str(rss),
                               **(env or {})})
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"field stage failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    row = {"seconds": seconds, "peak_rss_mb": json.loads(rss.read_text())["vmhwm_kb"] / 1024,
           "field_file_mb": out.stat().st_size / 2**20}
    rss.unlink()
    for line in proc.stdout.splitlines():
        if line.startswith("peak GPU memory:"):
            row["peak_gpu_gib"] = float(line.split(":")[1].split()[0])
    return row


def field_stage_memory(tmp: Path, void=(64, 64, 640), ordinary=(32, 20, 200), n_steps: int = N_STEPS) -> list[dict]:
    """Peak RSS of the field stage on the CPU at two N, 10× apart, for a void target
    (``room_layout``, target 6: an all-zero field, no passes; ``void`` = (px, N₁, N₂)) and an
    ordinary one (``normal``, target 1, every pass computed; ``ordinary`` = (px, N₁, N₂), at a
    smaller size since its passes take the time), random-init Taskonomy encoders."""
    ckpt = _write_checkpoint(tmp / "encoder.pth")
    rows = []
    for kind, task, target, (px, *sizes) in (("void (room_layout, target 6)", "room_layout", 6, void),
                                             ("ordinary (normal, target 1)", "normal", 1, ordinary)):
        for n in sizes:
            images = _write_images(tmp / f"images{n}.npy", n, px)
            out = tmp / f"stage_{task}_{n}.npy"
            r = run_field_stage(task, ckpt, images, out, target=target, n_steps=n_steps)
            out.unlink()
            images.unlink()
            rows.append({"target": kind, "n_images": n, "px": px, "steps": n_steps, **r})
            print(f"  field stage {kind:30s} N={n:5d} at {px} px: peak RSS {r['peak_rss_mb']:7.1f} MB, "
                  f"field {r['field_file_mb']:7.1f} MB, {r['seconds']:.1f} s", flush=True)
    ckpt.unlink()
    return rows


# --------------------------------------------------------------------------- 5. 17-field affinity


def _write_real_size_fields(folder: Path, k: int, n: int, n_steps: int, n_pixels: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    base = rng.standard_normal((n, n_steps, n_pixels), dtype=np.float32)
    paths = []
    for j in range(k):
        f = base + rng.uniform(0.3, 2.0) * rng.standard_normal(base.shape, dtype=np.float32)
        paths.append(save_field(folder / f"{j}.npy", f))
    return paths


def affinity_17(tmp: Path, device: torch.device, n_images: int = 8, n_steps: int = N_STEPS,
                n_pixels: int = 128 * 128, k: int = 17, full_n: int = 1000) -> list[dict]:
    """``affinity_matrix`` (the affinity stage) and ``image_contributions`` (the
    ``distance@modelgif`` stage: the same distances kept per image) over 17 fields of
    ``n_images`` × 50 × 128·128 (float16 storage, the pipeline's), timed per backend, and
    extrapolated linearly to the real N = 1000 (their work and reads are linear in N)."""
    from modelgif.compare.resample import image_contributions

    folder = tmp / "aff17"
    paths = _write_real_size_fields(folder, k, n_images, n_steps, n_pixels)
    backends = ["numpy", "cpu"] + (["cuda"] if device.type == "cuda" else [])
    rows = []
    for function, run in (("affinity_matrix", modelgif.affinity_matrix),
                          ("image_contributions", lambda f, device: image_contributions(f, device=device).mean(axis=0))):
        ref = None
        for backend in backends:
            run(paths[:2], device=backend)  # warm-up (imports, CUDA context)
            t0 = time.perf_counter()
            d = run(paths, device=backend)
            seconds = time.perf_counter() - t0
            ref = d if ref is None else ref
            rows.append({"function": function,
                         "backend": {"numpy": "numpy (CPU)", "cpu": "torch (CPU)", "cuda": "torch (CUDA)"}[backend],
                         "k": k, "n_images": n_images, "steps": n_steps, "values_per_row": n_pixels,
                         "seconds": seconds, "extrapolated_n": full_n,
                         "extrapolated_seconds": seconds * full_n / n_images,
                         "max_abs_diff_vs_numpy": float(np.abs(d - ref).max())})
            print(f"  {function} of {k} fields, {backend:5s}: {seconds:.2f} s for N={n_images} -> "
                  f"{rows[-1]['extrapolated_seconds']:.0f} s at N={full_n}", flush=True)
    for p in paths:
        p.unlink()
    folder.rmdir()
    return rows


# --------------------------------------------------------------------------- 6. real-size run (--full)


def full_run(tmp: Path, device: torch.device, precisions, n_images: int = 1000, px: int = 128,
             n_steps: int = N_STEPS, k: int = 17) -> dict:
    """One real-size field (``n_images`` × ``n_steps`` at ``px``, random-init TaskonomyEncoder)
    per precision through the field stage's own path (a fresh process: ``stages/field.py``,
    float16 storage, default batching), with wall time, peak host and GPU memory; then the
    ``k``-field affinity on the stage's float32 field (``k`` hard links to the one file: the
    same reads and arithmetic as ``k`` distinct fields; the file is in the page cache)."""
    ckpt = _write_checkpoint(tmp / "normal.pth")
    images = _write_images(tmp / "images.npy", n_images, px)
    out = {"n_images": n_images, "px": px, "steps": n_steps, "fields": []}
    field_path = None
    for precision in precisions:
        path = tmp / f"full_{precision}.npy"
        r = run_field_stage("normal", ckpt, images, path, n_steps=n_steps, precision=precision,
                            device=str(device))
        r.update(precision=precision, points_per_s=n_images * n_steps / r["seconds"],
                 extrapolated_17_tasks_s=r["seconds"] * k)
        out["fields"].append(r)
        print(f"  real-size field {precision:7s}: {r['seconds']:.1f} s, peak GPU {r.get('peak_gpu_gib', 0):.1f} GiB, "
              f"peak RSS {r['peak_rss_mb']:.0f} MB", flush=True)
        if precision == "float32":
            field_path = path
        else:
            path.unlink()
    if field_path is not None:
        links = []
        for j in range(k):
            link = tmp / "aff_full" / f"{j}.npy"
            link.parent.mkdir(exist_ok=True)
            os.link(field_path, link)
            links.append(link)
        t0 = time.perf_counter()
        d = modelgif.affinity_matrix(links)  # default device: CUDA when present
        out["affinity"] = {"k": k, "seconds": time.perf_counter() - t0, "device": "cuda" if torch.cuda.is_available()
                           else "numpy", "max_abs_off_diagonal": float(np.abs(d).max())}
        print(f"  affinity of {k} real-size fields: {out['affinity']['seconds']:.1f} s", flush=True)
        for link in links:
            link.unlink()
        field_path.unlink()
    images.unlink()
    ckpt.unlink()
    return out


# --------------------------------------------------------------------------- 7. bootstrap cost

#: The set-level methods as the pipeline runs them (each method's defaults in params.yaml): linear
#: CKA, biased; RSA; DDS (z-score, Laplacian, debiased CKA) with ``bootstrap_refit: false``
#: (normalised once on all images, its kernel matrices resampled like CKA's Gram matrices).
BOOT_METHODS = (("cka", {}), ("rsa", {}), ("dds", {"refit": False}))
#: Timed too, not counted in the total: DDS refitted on every resample (exact, numpy on the CPU,
#: ``bootstrap_refit: true``).
BOOT_EXTRA = (("dds", {"refit": True}),)


#: Taskonomy's shape: the resample counts at which :data:`BOOT_EXTRA` is timed (after one untimed
#: warm-up resample), extrapolated to 1000; the counted methods are timed whole.
BOOT_MEASURED_AT = (2, 6)


def _set_level_bootstrap(feats, n_boot: int, device: torch.device, extra_measured_at=None,
                         seed: int = 0) -> list[dict]:
    """Per method: the time of :func:`modelgif.compare.resample.bootstrap_set_distances` over
    ``n_boot`` resamples of the N images of ``feats`` (K arrays (N, D)) on ``device``, set-up
    (Gram, kernel and RDM matrices) included, after an untimed call on one resample (BLAS and
    CUDA warm-up). :data:`BOOT_METHODS` are timed whole. :data:`BOOT_EXTRA` too, unless
    ``extra_measured_at`` = (b₁, b₂): then the first b₁ and b₂ resamples are timed and the line
    t = a + b·B through the two points is extrapolated to ``n_boot`` (its resamples are
    independent computations of equal cost; a is the set-up). Each row also checks what was
    timed: a permutation of the images as the resample gives the method's distance on all images
    (``max_abs_diff_permutation``), and where the method is exact on the resampled rows (CKA,
    DDS refitted) so does the first resample (``max_abs_diff_resample``)."""
    from modelgif.compare.resample import bootstrap_set_distances, resample_indices
    from modelgif.compare.similarity import cka_distance, dds_distance, rsa_distance

    direct = {"cka": cka_distance, "rsa": rsa_distance, "dds": dds_distance}
    n = feats[0].shape[0]
    idx = resample_indices(n, n_boot, seed)
    perm = np.random.default_rng(seed).permutation(n)[None, :]
    rows = []
    for method, options in BOOT_METHODS + BOOT_EXTRA:
        counted = (method, options) in BOOT_METHODS
        row = {"method": method + "".join(f" ({k}={v})" for k, v in options.items()), "options": options,
               "counted": counted, "device": str(device) if not options.get("refit") else "cpu (numpy)",
               "k": len(feats), "n_images": n, "dims": int(feats[0].shape[1]), "n_resamples": n_boot}
        run = functools.partial(bootstrap_set_distances, method, feats, device=device, **options)
        run(idx[:1])  # warm-up: BLAS threads, CUDA context and kernels, first allocations
        if counted or extra_measured_at is None:
            t0 = time.perf_counter()
            samples = run(idx)
            row.update(seconds=time.perf_counter() - t0, measured_resamples=[n_boot], extrapolated=False)
        else:
            times = []
            for b in extra_measured_at:
                t0 = time.perf_counter()
                samples = run(idx[:b])
                times.append(time.perf_counter() - t0)
            (b1, b2), (t1, t2) = extra_measured_at, times
            per = (t2 - t1) / (b2 - b1)
            row.update(measured_resamples=list(extra_measured_at), measured_seconds=times,
                       setup_seconds=t1 - per * b1, seconds_per_resample=per, seconds=t1 + per * (n_boot - b1),
                       extrapolated=True)
        plain = {k: v for k, v in options.items() if k != "refit"}
        row["max_abs_diff_permutation"] = float(np.abs(run(perm)[0] - direct[method](feats, **plain)).max())
        if method == "cka" or options.get("refit"):  # rsa leaves out an image's pairs with its own copies
            row["max_abs_diff_resample"] = float(np.abs(
                samples[0] - direct[method]([x[idx[0]] for x in feats], **plain)).max())
        rows.append(row)
        print(f"    {row['method']}: {row['seconds']:.2f} s for {n_boot} resamples on {row['device']}"
              + (f" (extrapolated from {extra_measured_at})" if row["extrapolated"] else ""), flush=True)
    return rows


def _one_field_seconds(model, n_images: int, px: int, n_steps: int, tmp: Path, device: torch.device,
                       measured_images: int | None = None) -> dict:
    """One field of ``n_images`` × ``n_steps`` at ``px``: :func:`modelgif.gradient_field` (target 1,
    default batching, after a warm-up on 2 images) and its float16 file (:func:`save_field`), timed.
    ``measured_images`` < ``n_images``: that many images are timed and the time is scaled by
    ``n_images / measured_images`` (every image costs the same passes)."""
    m = measured_images or n_images
    g = torch.Generator().manual_seed(px)
    images = (torch.rand(m, 3, px, px, generator=g) * 2 - 1).to(device)
    baselines = modelgif.make_baselines(images, "shuffled", 0)
    model = model.to(device)
    # warm-up with passes of the measured size (oneDNN / cuDNN pick kernels per shape; the allocator)
    modelgif.gradient_field(model, images[:2], baselines[:2], n_steps=n_steps)
    t = _timed(lambda: save_field(tmp / "boot_field.npy", modelgif.gradient_field(model, images, baselines,
                                                                                  n_steps=n_steps).cpu()), device)
    (tmp / "boot_field.npy").unlink()
    return {"n_images": n_images, "px": px, "steps": n_steps, "measured_images": m, "measured_seconds": t,
            "seconds": t * n_images / m, "extrapolated": m < n_images}


def bootstrap_cost(tmp: Path, device: torch.device, *, quick: bool, tiny: bool,
                   n_boot: int = 1000) -> dict:
    """The set-level methods' bootstrap (``n_boot`` resamples, :data:`BOOT_METHODS`) beside the
    time of one field of the same shape, measured in the same run; ``ratio_to_one_field`` =
    bootstrap seconds / field seconds (the pipeline computes 17 fields, so / 17 for the share
    of all field time).

    - ``mini``: the mini zoo's shape: K = 17 :class:`~modelgif.mini.zoo.MiniEncoder` (initial
      weights, :func:`modelgif.zoo.models.random_encoder`), N = 100 images at 64 px, their outputs
      (8·4·4 = 128 values per image) as features; the field: one of them, 50 steps. All
      measured (``quick``: N = 16, 20 resamples, 8 steps).
    - ``taskonomy`` (not with ``quick``): Taskonomy's shape: K = 17, N = 1000, D = a
      TaskonomyEncoder's output size at 128 px (8·8·8 = 512; standard-normal features: the
      cost does not depend on the values) and one random-init TaskonomyEncoder field of
      1000 × 50 at 128 px. The bootstrap runs on ``device`` (torch float64) and is timed whole,
      except the exact DDS row (numpy on the CPU), extrapolated from :data:`BOOT_MEASURED_AT`
      resamples (t = a + b·B); the field is
      extrapolated from 4 images (× 250) on the CPU and measured whole on CUDA. ``tiny``:
      N = 50, a field of 4 steps at 32 px from 2 images, 20 resamples (and the mini shape
      as with ``quick``): a dry run.

    Rows of :data:`BOOT_EXTRA` are timed beside them but not counted in ``all_methods_*``.
    """
    from modelgif.field.attribution import encoder_features
    from modelgif.zoo.tasks import TASKS
    from modelgif.zoo.models import random_encoder

    tasks = list(TASKS)
    small = quick or tiny
    out = {"n_resamples": 20 if small else n_boot, "shapes": {}}
    n, steps = (16, 8) if small else (100, N_STEPS)
    b = out["n_resamples"]
    print(f"  mini shape: K = 17, N = {n}, {b} resamples", flush=True)
    models = [random_encoder(t, 0) for t in tasks]
    g = torch.Generator().manual_seed(0)
    images = torch.rand(n, 3, 64, 64, generator=g) * 2 - 1
    feats = [encoder_features(m, images) for m in models]
    field = _one_field_seconds(models[0], n, 64, steps, tmp, device)
    methods = _set_level_bootstrap(feats, b, device)
    out["shapes"]["mini"] = {"field": field, "methods": methods}
    if tiny or not quick:
        n_tk, n_field = (50, 2) if tiny else (1000, 4 if device.type == "cpu" else 1000)
        px_tk = 32 if tiny else 128
        torch.manual_seed(0)
        encoder = build_encoder("normal")
        with torch.no_grad():
            dims = encoder(torch.zeros(1, 3, px_tk, px_tk)).numel()
        print(f"  Taskonomy shape: K = 17, N = {n_tk}, D = {dims}, {b} resamples", flush=True)
        rng = np.random.default_rng(0)
        feats = [rng.standard_normal((n_tk, dims)) for _ in range(17)]
        field = _one_field_seconds(encoder, n_tk, px_tk, 4 if tiny else N_STEPS, tmp, device,
                                   measured_images=n_field)
        methods = _set_level_bootstrap(feats, b, device, BOOT_MEASURED_AT)
        out["shapes"]["taskonomy"] = {"field": field, "methods": methods}
    for shape in out["shapes"].values():
        for r in shape["methods"]:
            r["ratio_to_one_field"] = r["seconds"] / shape["field"]["seconds"]
        shape["all_methods_seconds"] = sum(r["seconds"] for r in shape["methods"] if r["counted"])
        shape["all_methods_ratio_to_one_field"] = shape["all_methods_seconds"] / shape["field"]["seconds"]
        shape["all_methods_ratio_to_17_fields"] = shape["all_methods_ratio_to_one_field"] / 17
    out["load_average_at_end"] = list(os.getloadavg())  # a shared machine: field and bootstrap slow down unequally
    return out


# --------------------------------------------------------------------------- report


def tables(result: dict) -> str:
    m = result["machine"]
    lines = [f"Machine: {m['cpu']}, {m['cpu_cores']} cores ({', '.join(m['cpu_flags'])}), "
             f"{m.get('gpu', 'no GPU')}, torch {m['torch']} ({m['torch_threads']} threads); device {m['device']}."]
    if "throughput" in result:
        lines += ["Matrix-multiply rate (GFLOP/s; torch.matmul / as a 1×1 conv): "
                  + ", ".join(f"{k} {v['matmul']:.0f} / {v['conv1x1']:.0f}" for k, v in result["matmul_gflops"].items()),
                  "",
                  "| precision | px | pts/pass | field pts/s | field→file pts/s | loop pts/s | ceiling pts/s "
                  "| field / ceiling | field→file / ceiling | field / loop | GFLOP/pt | field GFLOP/s | ceiling GFLOP/s "
                  "| machine GEMM GFLOP/s |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in result["throughput"]:
            lines.append(f"| {r['precision']} | {r['px']} | {r['points_per_pass']} | {r['field_pts_s']:.1f} "
                         f"| {r['field_to_file_pts_s']:.1f} | {r['loop_pts_s']:.1f} | {r['ceiling_pts_s']:.1f} "
                         f"| **{r['field_vs_ceiling']:.3f}** | {r['field_to_file_vs_ceiling']:.3f} "
                         f"| {r['field_vs_loop']:.2f} | {r['gflop_per_point']:.2f} | {r['field_gflops']:.0f} "
                         f"| {r['ceiling_gflops']:.0f} | {r['matmul_gflops']:.0f} |")
    if "affinity_memory" in result:
        lines += ["", "| affinity, K = 8 | N | field files (MB) | peak RSS (MB) | above imports (MB) | time (s) |",
                  "|---|---:|---:|---:|---:|---:|"]
        for r in result["affinity_memory"]:
            lines.append(f"| {r['mode']} | {r['n_images']} | {r['field_file_mb']:.0f} | {r['peak_rss_mb']:.0f} "
                         f"| {r['above_imports_mb']:.0f} | {r['seconds']:.2f} |")
    if "distance_effects" in result:
        e = result["distance_effects"]
        lines += ["", f"Distances vs exact float32 ({e['models']} random-init encoders, {e['px']} px, {e['images']} "
                  f"images × {e['steps']} steps, exact distances {e['exact_distance_range'][0]:.3f}–"
                  f"{e['exact_distance_range'][1]:.3f}):",
                  "", "| variant | Spearman (min over seeds) | Spearman (mean) | max rel. error | mean rel. error |",
                  "|---|---:|---:|---:|---:|"]

        def pct(x):
            return f"{100 * x:.2f} %" if x >= 1e-4 else f"{100 * x:.1e} %"

        for v in e["variants"]:
            lines.append(f"| {v['variant']} | {v['spearman']:.4f} | {v.get('spearman_mean', v['spearman']):.4f} "
                         f"| {pct(v['max_rel_err'])} | {pct(v['mean_rel_err'])} |")
    if "stage_memory" in result:
        lines += ["", "| field stage (CPU), target | N | px | steps | field file (MB) | peak RSS (MB) | time (s) |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for r in result["stage_memory"]:
            lines.append(f"| {r['target']} | {r['n_images']} | {r['px']} | {r['steps']} | {r['field_file_mb']:.1f} "
                         f"| {r['peak_rss_mb']:.0f} | {r['seconds']:.1f} |")
    if "affinity_17" in result:
        lines += ["", "| 17 fields (× 50 × 128·128, float16) | backend | N measured | time (s) "
                  "| extrapolated to N = 1000 (s) | max abs diff vs numpy |", "|---|---|---:|---:|---:|---:|"]
        for r in result["affinity_17"]:
            lines.append(f"| {r['function']} | {r['backend']} | {r['n_images']} | {r['seconds']:.2f} "
                         f"| {r['extrapolated_seconds']:.0f} | {r['max_abs_diff_vs_numpy']:.1e} |")
    if "full" in result:
        f = result["full"]
        ceiling = {r["precision"]: r for r in result.get("throughput", []) if r["px"] == f["px"]}
        lines += ["", f"Real-size field: {f['n_images']} images × {f['steps']} steps at {f['px']} px through the "
                  "field stage (random-init encoder, float16 storage):", "",
                  "| precision | time (s) | path points/s | peak GPU memory (GiB) | peak RSS (MB) | 17 tasks (min) "
                  "| 17 tasks at the ceiling (min) | 17 tasks, one-image loop (min) |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|"]
        points17 = 17 * f["n_images"] * f["steps"]
        for r in f["fields"]:
            c = ceiling.get(r["precision"])
            lines.append(f"| {r['precision']} | {r['seconds']:.1f} | {r['points_per_s']:.0f} "
                         f"| {r.get('peak_gpu_gib', float('nan')):.1f} | {r['peak_rss_mb']:.0f} "
                         f"| {r['extrapolated_17_tasks_s'] / 60:.1f} "
                         f"| {points17 / c['ceiling_pts_s'] / 60 if c else float('nan'):.1f} "
                         f"| {points17 / c['loop_pts_s'] / 60 if c else float('nan'):.1f} |")
        if "affinity" in f:
            a = f["affinity"]
            lines += ["", f"Affinity of {a['k']} real-size fields ({a['device']}): {a['seconds']:.1f} s."]
    if "bootstrap" in result:
        bt = result["bootstrap"]
        lines += ["", f"Set-level methods' bootstrap ({bt['n_resamples']} resamples) beside one field of the same "
                  f"shape (same run; load average at the end {bt['load_average_at_end'][0]:.1f}):", "",
                  "| shape | method | on | K | N | D | bootstrap (s) | one field (s) | bootstrap / one field "
                  "| / 17 fields |", "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
        for name, shape in bt["shapes"].items():
            f = shape["field"]
            fs = f"{f['seconds']:.1f}" + (f" (from {f['measured_images']} images)" if f["extrapolated"] else "")
            for r in shape["methods"]:
                bs = f"{r['seconds']:.2f}" + (f" (from {r['measured_resamples']})" if r["extrapolated"] else "")
                label = r["method"] if r["counted"] else f"{r['method']}, not counted"
                lines.append(f"| {name} | {label} | {r['device']} | {r['k']} | {r['n_images']} | {r['dims']} | {bs} | {fs} "
                             f"| {r['ratio_to_one_field']:.3f} | {r['ratio_to_one_field'] / 17:.4f} |")
            lines.append(f"| {name} | **all three** | | | | | {shape['all_methods_seconds']:.2f} | {fs} "
                         f"| **{shape['all_methods_ratio_to_one_field']:.3f}** "
                         f"| **{shape['all_methods_ratio_to_17_fields']:.4f}** |")
    return "\n".join(lines)


SECTIONS = ("throughput", "affinity_memory", "distance_effects", "stage_memory", "affinity_17", "bootstrap", "full")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="auto", help="auto, cpu or cuda")
    ap.add_argument("--quick", action="store_true", help="small sizes and one repeat (a smoke run)")
    ap.add_argument("--full", action="store_true",
                    help="also one real-size field (1000 × 50 at 128 px) per precision through the field stage, "
                         "and the 17-field affinity on it (make bench-gpu)")
    ap.add_argument("--tiny", action="store_true",
                    help="with --full: 4 images × 4 steps at 32 px instead (a dry run of the GPU script on a CPU)")
    ap.add_argument("--sections", default=",".join(s for s in SECTIONS if s != "full"),
                    help=f"comma-separated subset of {', '.join(SECTIONS)} (--full adds full)")
    ap.add_argument("--out", type=Path, default=None, help="JSON path (default benchmarks/results-<device>.json)")
    ap.add_argument("--affinity-child", nargs=2, metavar=("MODE", "FOLDER"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.affinity_child:
        _affinity_child(*args.affinity_child)
        return
    sections = [x.strip() for x in args.sections.split(",") if x.strip()] + (["full"] if args.full else [])
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        ap.error(f"unknown sections {', '.join(unknown)}; valid: {', '.join(SECTIONS)}")
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    # on the CPU "tf32" is float32 arithmetic in channels_last (TF32 exists only on CUDA)
    precisions = ("float32", "tf32", "bf16")
    quick, tiny = args.quick, args.tiny
    result = {"command": " ".join(["python", "benchmarks/performance.py", *(argv if argv is not None else sys.argv[1:])]),
              "machine": machine_info(device), "quick": quick, "tiny": tiny, "sections": sections}
    # as the field stage does on the CPU; it applies to the field, the loop and the ceiling alike
    result["keep_freed_cpu_memory"] = keep_freed_cpu_memory() if device.type == "cpu" else None
    t_start = time.perf_counter()
    print(f"modelgif benchmark on {device} ({result['machine']['cpu']}, {result['machine']['cpu_cores']} cores)",
          flush=True)
    with tempfile.TemporaryDirectory(prefix="modelgif-bench-") as tmp:
        tmp = Path(tmp)
        if "throughput" in sections:
            result["matmul_gflops"] = {p: matmul_rate(device, p, quick) for p in precisions}
            print("1. throughput", flush=True)
            result["throughput"] = throughput(device, precisions, (64,) if quick else (64, 128), 1 if quick else 3,
                                              quick, tmp, result["matmul_gflops"])
        if "affinity_memory" in sections:
            print("2. affinity memory", flush=True)
            result["affinity_memory"] = affinity_memory((64, 256) if quick else (64, 256, 1024), tmp)
        if "distance_effects" in sections:
            print("3. distance effects", flush=True)
            result["distance_effects"] = distance_effects(
                device, precisions, px=64 if quick else 128, n_images=4 if quick else 16, n_steps=4 if quick else 8,
                sketch_dims=(256,) if quick else (1024, 256), n_seeds=2 if quick else 10, tmp=tmp)
        if "stage_memory" in sections:
            print("4. field stage memory (CPU)", flush=True)
            small = quick or tiny
            result["stage_memory"] = field_stage_memory(tmp, void=(32, 8, 80) if small else (64, 64, 640),
                                                        ordinary=(32, 2, 20) if small else (32, 20, 200),
                                                        n_steps=8 if small else N_STEPS)
        if "affinity_17" in sections:
            print("5. affinity of 17 real-size fields", flush=True)
            result["affinity_17"] = affinity_17(tmp, device, n_images=2 if quick or tiny else 8)
        if "bootstrap" in sections:
            print("7. set-level methods' bootstrap beside one field", flush=True)
            result["bootstrap"] = bootstrap_cost(tmp, device, quick=quick, tiny=tiny)
        if "full" in sections:
            print("6. real-size run", flush=True)
            result["full"] = full_run(tmp, device, precisions, **(dict(n_images=4, px=32, n_steps=4) if tiny else {}))
    result["checks"] = checks(result)
    result["total_seconds"] = time.perf_counter() - t_start
    result["tables_markdown"] = tables(result)
    out = args.out or (None if quick or tiny else ROOT / "benchmarks" / f"results-{device.type}.json")
    if out is not None:
        out.write_text(json.dumps(result, indent=1) + "\n")
    print()
    print(result["tables_markdown"])
    print(f"\nchecks: {json.dumps(result['checks'])}; {result['total_seconds']:.0f} s"
          + (f"; written to {out}" if out else " (quick run: no JSON written; --out to keep one)"))


def checks(result: dict) -> dict:
    out = {}
    if "throughput" in result:
        out["min_field_vs_ceiling_float32"] = min(r["field_vs_ceiling"] for r in result["throughput"]
                                                  if r["precision"] == "float32")
    if "affinity_memory" in result:
        streamed = {r["n_images"]: r["peak_rss_mb"] for r in result["affinity_memory"] if r["mode"] == "streamed"}
        out["affinity_peak_ratio_largest_vs_smallest_n"] = streamed[max(streamed)] / streamed[min(streamed)]
    if "bootstrap" in result:
        out["bootstrap_ratio_to_one_field"] = {name: shape["all_methods_ratio_to_one_field"]
                                               for name, shape in result["bootstrap"]["shapes"].items()}
    if "stage_memory" in result:
        by = {}
        for r in result["stage_memory"]:
            by.setdefault(r["target"], {})[r["n_images"]] = r["peak_rss_mb"]
        out["field_stage_peak_rss_ratio_10x_n"] = {t: v[max(v)] / v[min(v)] for t, v in by.items()}
    return out


if __name__ == "__main__":
    main()
