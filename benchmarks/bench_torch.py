"""Side-by-side benchmark of the PyTorch criterion on CPU, in one process.

Usage (from the repository root, after ``pip install -e ".[test]"``):

    flock /tmp/acbmse-bench.lock python benchmarks/bench_torch.py
    flock /tmp/acbmse-bench.lock python benchmarks/bench_torch.py --json out.json

Workloads (float32, about 2% hits, CPU):

* ``large`` = ``(10, 3, 256, 256)``: forward+backward of ``acbmse_rs.torch.ACBLoss``
  (Rust kernel; and the pure-tensor path for reference) against the original
  ``acb_mse.ACBLoss`` and ``torch.nn.functional.mse_loss``; forward alone against
  ``F.mse_loss``. Targets: fwd+bwd >= 30x faster than the original, forward faster than
  ``F.mse_loss``.
* ``tiny`` = ``(1, 1, 8, 8)``: the kernel time is negligible, so the time of a call is
  the Python/dispatcher overhead of the criterion. It is compared with ``F.mse_loss``
  at the same size and with the large step's time.

Times are medians of repeated runs after warm-up, all in the same run and interleaved
(each round runs every competitor once), so they see the same machine load; ratios are
what to read. Every fwd+bwd iteration resets ``pred.grad``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from typing import Any, Callable

import acbmse_rs
import torch
import torch.nn.functional as F
from acb_mse import ACBLoss as OriginalACBLoss
from acbmse_rs.torch import ACBLoss


def make_data(shape: tuple[int, ...], hit_rate: float = 0.02, seed: int = 0):
    """float32 target with about ``hit_rate`` nonzero elements and a noisy prediction."""
    g = torch.Generator().manual_seed(seed)
    target = torch.zeros(shape)
    hits = torch.rand(shape, generator=g) < hit_rate
    target[hits] = torch.rand(int(hits.sum()), generator=g) + 0.5
    pred = target + 0.1 * torch.randn(shape, generator=g)
    return pred.requires_grad_(), target


def fwd_bwd(criterion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], pred, target):
    def run() -> None:
        pred.grad = None
        criterion(pred, target).backward()

    return run


def forward_only(criterion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], pred, target):
    def run() -> None:
        with torch.no_grad():
            criterion(pred, target)

    return run


def interleaved(
    fns: dict[str, Callable[[], Any]], repeats: int, warmup: int = 3
) -> dict[str, float]:
    """Median seconds of each function, timed in rotation so that all see the same load.

    Each round runs every function once (in a rotated order); a slow function (the
    original) gets fewer rounds via ``repeats`` capped by a time budget.
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    names = list(fns)
    times: dict[str, list[float]] = {name: [] for name in names}
    budget_end = time.perf_counter() + 60.0
    for r in range(repeats):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            start = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - start)
        if r >= 4 and time.perf_counter() > budget_end:
            break
    return {name: statistics.median(ts) for name, ts in times.items()}


def bench(repeats_large: int, repeats_tiny: int) -> dict[str, Any]:
    ours = ACBLoss()
    ours_tensor = ACBLoss(backend="tensor")
    original = OriginalACBLoss()
    results: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "acbmse_threads": acbmse_rs.get_num_threads(),
            "torch": torch.__version__,
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_average_1min_before": os.getloadavg()[0],
        }
    }

    pred, target = make_data((10, 3, 256, 256))
    p_np, t_np = pred.detach().numpy(), target.numpy()
    large = interleaved(
        {
            "fwd_bwd_ours_kernel": fwd_bwd(ours, pred, target),
            "fwd_bwd_ours_tensor": fwd_bwd(ours_tensor, pred, target),
            "fwd_bwd_original": fwd_bwd(original, pred, target),
            "fwd_bwd_mse_loss": fwd_bwd(F.mse_loss, pred, target),
            "fwd_ours_kernel": forward_only(ours, pred, target),
            "fwd_ours_tensor": forward_only(ours_tensor, pred, target),
            "fwd_original": forward_only(original, pred, target),
            "fwd_mse_loss": forward_only(F.mse_loss, pred, target),
            "kernel_only_fwd": lambda: acbmse_rs._core.class_stats(p_np, t_np),
        },
        repeats_large,
    )
    results["large"] = large

    pred_t, target_t = make_data((1, 1, 8, 8), hit_rate=0.1)
    pt_np, tt_np = pred_t.detach().numpy(), target_t.numpy()
    tiny = interleaved(
        {
            "fwd_bwd_ours_kernel": fwd_bwd(ours, pred_t, target_t),
            "fwd_bwd_ours_tensor": fwd_bwd(ours_tensor, pred_t, target_t),
            "fwd_bwd_original": fwd_bwd(original, pred_t, target_t),
            "fwd_bwd_mse_loss": fwd_bwd(F.mse_loss, pred_t, target_t),
            "fwd_ours_kernel": forward_only(ours, pred_t, target_t),
            "fwd_mse_loss": forward_only(F.mse_loss, pred_t, target_t),
            "kernel_only_fwd": lambda: acbmse_rs._core.class_stats(pt_np, tt_np),
        },
        repeats_tiny,
    )
    results["tiny"] = tiny

    results["ratios"] = {
        "large_fwd_bwd_original_over_ours": large["fwd_bwd_original"]
        / large["fwd_bwd_ours_kernel"],
        "large_fwd_mse_loss_over_ours": large["fwd_mse_loss"] / large["fwd_ours_kernel"],
        "large_fwd_bwd_mse_loss_over_ours": large["fwd_bwd_mse_loss"]
        / large["fwd_bwd_ours_kernel"],
        "large_fwd_bwd_original_over_ours_tensor": large["fwd_bwd_original"]
        / large["fwd_bwd_ours_tensor"],
        "large_fwd_ours_over_kernel_only": large["fwd_ours_kernel"] / large["kernel_only_fwd"],
        "tiny_fwd_bwd_ours_over_mse_loss": tiny["fwd_bwd_ours_kernel"] / tiny["fwd_bwd_mse_loss"],
        "tiny_fwd_bwd_original_over_ours": tiny["fwd_bwd_original"] / tiny["fwd_bwd_ours_kernel"],
        "tiny_fwd_bwd_ours_share_of_large_step": tiny["fwd_bwd_ours_kernel"]
        / large["fwd_bwd_ours_kernel"],
    }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=21, help="rounds of large workloads")
    parser.add_argument("--tiny-repeats", type=int, default=2001, help="repeats at tiny size")
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument(
        "--threads", type=int, help="threads for both torch and the Rust kernels (default: all)"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
        acbmse_rs.set_num_threads(args.threads)
    res = bench(args.repeats, args.tiny_repeats)
    m = res["machine"]
    print(
        f"CPU cores: {m['cpus']}, torch threads: {m['torch_threads']}, "
        f"acbmse threads: {m['acbmse_threads']}, torch {m['torch']}, Python {m['python']}, "
        f"load average before: {m['load_average_1min_before']:.1f}"
    )
    for size in ("large", "tiny"):
        label = "(10, 3, 256, 256)" if size == "large" else "(1, 1, 8, 8)"
        print(f"\n{size} {label} float32, median times")
        for name, seconds in res[size].items():
            print(f"  {name:24s} {seconds * 1e6:12.1f} us")
    print("\nratios")
    for name, value in res["ratios"].items():
        print(f"  {name:42s} {value:8.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)


if __name__ == "__main__":
    main()
