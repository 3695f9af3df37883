"""Time ACB-MSE implementations against input size, side by side in one run; write JSON.

For each size from 10^4 to 10^8 float32 elements (a flat pred/target pair with about 1.8%
nonzero target elements, DEEPCLEAN3D's 200 hits in 11,264 pixels) this times:

* ``acbmse_rs.acb_mse`` and ``acbmse_rs.acb_mse_grad`` (loss, and loss plus gradient);
* the original package's ``acb_mse.ACBLoss()`` forward on CPU torch tensors (zero-copy
  ``torch.from_numpy`` views; torch limited to the machine's cores);
* scikit-learn's balanced MSE, ``mean_squared_error(target, pred,
  sample_weight=compute_sample_weight("balanced", target != 0))`` (equal to ACB-MSE / 2),
  timed with the weight computation, which is part of the method;
* a plain NumPy implementation (boolean masks, one mean per class);
* ``numpy.dot(pred.ravel(), target.ravel())``, which reads both inputs once and does
  almost no arithmetic: the memory-bandwidth roofline that no loss can beat.

Each implementation is repeated until it has run for ``--min-time`` seconds (at least
``--min-repeats`` times and at most ``--max-repeats``) and the fastest run is kept. An
implementation whose time at one size, scaled linearly to the next size, would exceed
``--skip-above`` seconds is skipped at the larger sizes; the JSON lists what was skipped.

Run it serialised with other timing runs on a shared machine, e.g.::

    flock /tmp/acbmse-bench.lock python benchmarks/bench_sweep.py

``docs/figures/speed.py`` plots the JSON (and can run this sweep first).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import acbmse_rs
import numpy as np

DEFAULT_SIZES = [10**4, 3 * 10**4, 10**5, 3 * 10**5, 10**6, 3 * 10**6, 10**7, 3 * 10**7, 10**8]
HIT_FRACTION = 200 / 11264
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "docs" / "figures" / "speed.json"


def numpy_acb_mse(pred: np.ndarray, target: np.ndarray) -> float:
    """ACB-MSE written in plain NumPy the way one usually would (boolean masks)."""
    sq = (pred - target) ** 2
    zero = target == 0
    loss = 0.0
    if zero.any():
        loss += float(sq[zero].mean())
    if not zero.all():
        loss += float(sq[~zero].mean())
    return loss


def make_data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A float32 (pred, target) pair of ``n`` elements with ~1.8% nonzero targets."""
    rng = np.random.default_rng(seed)
    target = np.zeros(n, dtype=np.float32)
    hits = rng.random(n, dtype=np.float32) < HIT_FRACTION
    target[hits] = rng.random(int(hits.sum()), dtype=np.float32) + 0.1
    pred = rng.random(n, dtype=np.float32) * 0.2
    return pred, target


def implementations(pred: np.ndarray, target: np.ndarray) -> dict[str, Callable[[], Any]]:
    """Zero-argument callables computing the loss on this (pred, target) pair, by name."""
    import torch
    from acb_mse import ACBLoss
    from sklearn.metrics import mean_squared_error
    from sklearn.utils.class_weight import compute_sample_weight

    original = ACBLoss()
    pred_t, target_t = torch.from_numpy(pred), torch.from_numpy(target)

    def sklearn_balanced() -> float:
        weights = compute_sample_weight("balanced", target != 0)
        return float(mean_squared_error(target, pred, sample_weight=weights))

    def original_forward() -> Any:
        with torch.no_grad():
            return original(pred_t, target_t)

    return {
        "acbmse_rs.acb_mse": lambda: acbmse_rs.acb_mse(pred, target),
        "acbmse_rs.acb_mse_grad": lambda: acbmse_rs.acb_mse_grad(pred, target),
        "acb_mse.ACBLoss (original, torch CPU)": original_forward,
        "scikit-learn balanced MSE": sklearn_balanced,
        "plain NumPy": lambda: numpy_acb_mse(pred, target),
        "numpy.dot roofline": lambda: np.dot(pred.ravel(), target.ravel()),
    }


def check_agreement(pred: np.ndarray, target: np.ndarray) -> None:
    """Fail loudly if the implementations do not compute the same loss."""
    impls = implementations(pred, target)
    ref = impls["acbmse_rs.acb_mse"]()
    others = {
        "acbmse_rs.acb_mse_grad": impls["acbmse_rs.acb_mse_grad"]()[0],
        "original": float(impls["acb_mse.ACBLoss (original, torch CPU)"]()),
        "scikit-learn x 2": 2 * impls["scikit-learn balanced MSE"](),
        "plain NumPy": impls["plain NumPy"](),
    }
    for name, value in others.items():
        if not np.isclose(value, ref, rtol=1e-4):
            raise AssertionError(f"{name} gives {value}, acbmse_rs.acb_mse gives {ref}")


def time_call(
    fn: Callable[[], Any], min_time: float, min_repeats: int, max_repeats: int
) -> dict[str, float | int]:
    """Best and median wall time of ``fn`` over enough repeats."""
    fn()  # warm-up (page faults, lazy imports, thread pools)
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < max_repeats and (
        len(times) < min_repeats or time.perf_counter() - start < min_time
    ):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return {"best_s": min(times), "median_s": float(np.median(times)), "repeats": len(times)}


def sweep(
    sizes: list[int], min_time: float, min_repeats: int, max_repeats: int, skip_above: float
) -> dict[str, Any]:
    """Time every implementation at every size; return the JSON-ready results."""
    import torch

    cores = os.cpu_count() or 1
    torch.set_num_threads(cores)
    check_agreement(*make_data(100_000, seed=1))
    results: dict[str, dict[str, dict[str, float | int]]] = {}
    skipped: dict[str, list[int]] = {}
    for n in sizes:
        pred, target = make_data(n)
        for name, fn in implementations(pred, target).items():
            timings = results.setdefault(name, {})
            previous = [int(k) for k in timings]
            if previous:
                last = max(previous)
                if timings[str(last)]["best_s"] * n / last > skip_above:
                    skipped.setdefault(name, []).append(n)
                    continue
            timings[str(n)] = time_call(fn, min_time, min_repeats, max_repeats)
            print(f"{n:>11,d}  {name:<40s} {timings[str(n)]['best_s'] * 1e3:10.3f} ms", flush=True)
        del pred, target
        gc.collect()
    return {
        "description": "best wall time (seconds) per call, float32 flat inputs, ~1.8% hits",
        "machine": {
            "cpu_count": cores,
            "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "acbmse_rs_threads": acbmse_rs.get_num_threads(),
        },
        "sizes": sizes,
        "results": results,
        "skipped": skipped,
        "skip_rule": (
            f"skipped where the previous size's time, scaled linearly, exceeds {skip_above} s"
        ),
    }


def main() -> None:
    """Command-line entry point: run the sweep and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON path")
    parser.add_argument("--sizes", type=int, nargs="+", default=DEFAULT_SIZES)
    parser.add_argument("--min-time", type=float, default=0.5)
    parser.add_argument("--min-repeats", type=int, default=3)
    parser.add_argument("--max-repeats", type=int, default=200)
    parser.add_argument("--skip-above", type=float, default=6.0)
    args = parser.parse_args()
    data = sweep(args.sizes, args.min_time, args.min_repeats, args.max_repeats, args.skip_above)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    tmp.replace(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
