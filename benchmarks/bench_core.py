"""Side-by-side benchmark of the NumPy API against every competitor, in one process.

Usage (from the repository root, after `pip install -e ".[test]"`):

    python benchmarks/bench_core.py                 # both workloads, table + JSON
    python benchmarks/bench_core.py --large 0       # only the (10, 3, 256, 256) workload

Every competitor runs on the same float32 data in the same run: the original
``acb_mse.ACBLoss`` (torch, CPU), a straightforward NumPy implementation,
scikit-learn's balanced ``mean_squared_error`` (ACB-MSE / 2 for unit weights),
``torch.nn.functional.mse_loss`` (plain MSE) and ``numpy.dot(pred.ravel(),
target.ravel())``, which reads the same bytes once and stands for the memory-bandwidth
limit (the "roofline"). Times are medians of repeated runs after warm-up; ratios are
against the roofline. Results go to stdout and to benchmarks/results/core-*.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
import tracemalloc
from pathlib import Path
from typing import Any, Callable

import acbmse_rs
import numpy as np


def median_time(fn: Callable[[], Any], repeats: int, warmup: int = 2) -> float:
    """Median wall time of `fn()` over `repeats` runs after `warmup` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def peak_traced_bytes(fn: Callable[[], Any]) -> int:
    """Peak bytes allocated through Python/NumPy allocators while `fn()` runs."""
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def make_data(shape: tuple[int, ...], hit_rate: float, seed: int = 0):
    """float32 target with about `hit_rate` nonzero elements and a noisy prediction."""
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    target = np.zeros(n, np.float32)
    hits = rng.choice(n, size=int(n * hit_rate), replace=False)
    target[hits] = rng.uniform(0.5, 2.0, hits.size).astype(np.float32)
    pred = target + rng.standard_normal(n, dtype=np.float32) * np.float32(0.1)
    return pred.reshape(shape), target.reshape(shape)


def numpy_acb_mse(pred: np.ndarray, target: np.ndarray) -> float:
    """What one writes without acbmse-rs: boolean masks and two means."""
    zero = target == 0
    sq = (pred - target) ** 2
    loss = 0.0
    if zero.any():
        loss += float(sq[zero].mean())
    if (~zero).any():
        loss += float(sq[~zero].mean())
    return loss


def competitors(pred: np.ndarray, target: np.ndarray, with_sklearn: bool):
    """(name, callable) pairs, all on the same data."""
    out: list[tuple[str, Callable[[], Any]]] = [
        ("numpy.dot (roofline)", lambda: np.dot(pred.ravel(), target.ravel())),
        ("acbmse_rs.acb_mse", lambda: acbmse_rs.acb_mse(pred, target)),
        ("acbmse_rs.class_stats", lambda: acbmse_rs.class_stats(pred, target)),
        ("acbmse_rs.acb_mse_per_sample", lambda: acbmse_rs.acb_mse_per_sample(pred, target)),
        ("acbmse_rs.acb_mse_grad", lambda: acbmse_rs.acb_mse_grad(pred, target)),
        ("numpy (masks)", lambda: numpy_acb_mse(pred, target)),
    ]
    try:
        import torch
        import torch.nn.functional as F
        from acb_mse import ACBLoss

        tp, tt = torch.from_numpy(pred), torch.from_numpy(target)
        original = ACBLoss()
        out.append(("original acb_mse.ACBLoss (torch)", lambda: original(tp, tt)))
        out.append(("torch F.mse_loss (plain MSE)", lambda: F.mse_loss(tp, tt)))
    except ImportError as e:  # pragma: no cover - reported in the table
        print(f"# skipping torch competitors: {e}")
    if with_sklearn:
        from sklearn.metrics import mean_squared_error
        from sklearn.utils.class_weight import compute_sample_weight

        flat_p, flat_t = pred.ravel(), target.ravel()

        def sklearn_balanced() -> float:
            w = compute_sample_weight("balanced", flat_t != 0)
            return 2.0 * float(mean_squared_error(flat_t, flat_p, sample_weight=w))

        out.append(("sklearn balanced MSE", sklearn_balanced))
    return out


def run_workload(name: str, shape: tuple[int, ...], repeats: int, with_sklearn: bool) -> dict:
    pred, target = make_data(shape, 0.02)
    n = pred.size
    print(
        f"\n## {name}: float32 {shape} = {n:,} elements, "
        f"{100 * np.count_nonzero(target) / n:.1f}% hits, {2 * pred.nbytes / 1e6:.0f} MB read"
    )
    rows = []
    for label, fn in competitors(pred, target, with_sklearn):
        slow = "sklearn" in label or "original" in label
        reps = max(3, repeats // 3) if slow else repeats
        t = median_time(fn, reps)
        rows.append({"name": label, "seconds": t})
    roof = rows[0]["seconds"]
    by_name = {r["name"]: r["seconds"] for r in rows}
    ours = by_name["acbmse_rs.acb_mse"]
    print(f"{'competitor':40s} {'median':>12s} {'x roofline':>11s} {'acb_mse faster by':>18s}")
    for r in rows:
        r["x_roofline"] = r["seconds"] / roof
        r["acb_mse_speedup"] = r["seconds"] / ours
        print(
            f"{r['name']:40s} {r['seconds'] * 1e3:9.3f} ms {r['x_roofline']:10.2f}x "
            f"{r['acb_mse_speedup']:17.1f}x"
        )
    memory = {
        "acb_mse": peak_traced_bytes(lambda: acbmse_rs.acb_mse(pred, target)),
        "class_stats": peak_traced_bytes(lambda: acbmse_rs.class_stats(pred, target)),
        "acb_mse_per_sample": peak_traced_bytes(lambda: acbmse_rs.acb_mse_per_sample(pred, target)),
        "acb_mse_grad": peak_traced_bytes(lambda: acbmse_rs.acb_mse_grad(pred, target)),
        "numpy (masks)": peak_traced_bytes(lambda: numpy_acb_mse(pred, target)),
    }
    print(
        "peak extra memory (tracemalloc): "
        + ", ".join(f"{k} {v / 1e6:.3f} MB" for k, v in memory.items())
        + f"  (input {pred.nbytes / 1e6:.0f} MB each)"
    )
    return {
        "workload": name,
        "shape": list(shape),
        "elements": n,
        "rows": rows,
        "peak_extra_bytes": memory,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--large", type=int, default=100_000_000, help="elements of the large workload (0 to skip)"
    )
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument(
        "--threads", type=int, default=None, help="acbmse_rs threads (default: all cores)"
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    if args.threads:
        acbmse_rs.set_num_threads(args.threads)
    info = {
        "cpu_count": os.cpu_count(),
        "acbmse_rs_threads": acbmse_rs.get_num_threads(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "acbmse_rs": acbmse_rs.__version__,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    print("# acbmse-rs core benchmark:", json.dumps(info))
    results = [run_workload("original example", (10, 3, 256, 256), args.repeats, True)]
    if args.large:
        shape = (args.large // 11264, 11264)
        results.append(run_workload("large", shape, max(5, args.repeats // 3), False))
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"core-{time.strftime('%Y%m%d-%H%M%S')}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"info": info, "results": results}, indent=2))
    tmp.replace(path)
    print(f"\nwritten {path}")


if __name__ == "__main__":
    main()
