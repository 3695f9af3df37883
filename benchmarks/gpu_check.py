"""One short GPU check of ``acbmse_rs.torch.ACBLoss`` (issue 3). Needs a CUDA GPU.

Usage (from the repository root, after ``pip install -e ".[test]"``):

    python benchmarks/gpu_check.py                      # on a machine with CUDA
    python benchmarks/gpu_check.py --json gpu.json      # also write the results
    python benchmarks/gpu_check.py --device cpu --quick # dry run of the script itself

What it does, in well under a minute on one GPU:

1. Correctness: CUDA results (the sync-free tensor path) against the CPU Rust-kernel
   path on the same data: float32 and float64 values and gradients for input and
   target, per-sample losses, float16/bfloat16 (accumulated in float32), autocast.
2. No host synchronisation: after warm-up, ``torch.cuda.set_sync_debug_mode("error")``
   around forward+backward steps in eager mode, under ``torch.compile(fullgraph=True)``
   and as a captured CUDA graph (replayed and compared). As a control, the original
   ``acb_mse.ACBLoss`` must raise under the same mode (it reads tensors on the host).
3. Timing, float32 ``(10, 3, 256, 256)`` with about 2% hits: forward+backward of ours
   (eager and compiled) against the original and ``F.mse_loss``, with CUDA events.

Exit status 0 when every check passes, 1 on a failed check, 2 when CUDA is missing
(without ``--device cpu``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from typing import Any, Callable

import torch
import torch.nn.functional as F
from acbmse_rs.torch import ACBLoss, acb_mse


def make_data(shape: tuple[int, ...], device: str, dtype: torch.dtype, seed: int = 0):
    """Target with about 2% positive hits and a noisy prediction, built on the CPU."""
    g = torch.Generator().manual_seed(seed)
    target = torch.zeros(shape, dtype=torch.float64)
    hits = torch.rand(shape, generator=g, dtype=torch.float64) < 0.02
    target[hits] = torch.rand(int(hits.sum()), generator=g, dtype=torch.float64) + 0.5
    pred = target + 0.1 * torch.randn(shape, generator=g, dtype=torch.float64)
    return pred.to(device, dtype), target.to(device, dtype)


def loss_and_grads(
    fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    pred: torch.Tensor,
    target: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    p = pred.detach().clone().requires_grad_()
    t = target.detach().clone().requires_grad_()
    loss = fn(p, t)
    loss.sum().backward()
    assert p.grad is not None and t.grad is not None
    return loss.detach().cpu(), p.grad.cpu(), t.grad.cpu()


def check_correctness(device: str) -> list[str]:
    done = []
    for dtype, rtol, atol in ((torch.float32, 1e-5, 1e-9), (torch.float64, 1e-12, 1e-15)):
        pred, target = make_data((4, 3, 64, 48), "cpu", dtype)
        for reduction in ("global", "none"):
            ref = loss_and_grads(
                lambda p, t: acb_mse(p, t, 0.5, 2.0, reduction=reduction, backend="kernel"),  # noqa: B023
                pred,
                target,
            )
            dev = loss_and_grads(
                lambda p, t: acb_mse(p, t, 0.5, 2.0, reduction=reduction, backend="tensor"),  # noqa: B023
                pred.to(device),
                target.to(device),
            )
            for a, b in zip(dev, ref):
                torch.testing.assert_close(a, b, rtol=rtol, atol=atol)
            done.append(f"{dtype} reduction={reduction}: {device} == CPU kernel (values, grads)")
    for dtype in (torch.float16, torch.bfloat16):
        pred, target = make_data((4, 3, 64, 48), "cpu", dtype)
        ref = acb_mse(pred, target, backend="kernel")
        dev = acb_mse(pred.to(device), target.to(device), backend="tensor")
        assert dev.dtype == dtype
        torch.testing.assert_close(dev.cpu().float(), ref.float(), rtol=1e-2, atol=0.0)
        done.append(f"{dtype}: {device} == CPU kernel, accumulated in float32")
    model = torch.nn.Conv2d(3, 3, 3, padding=1).to(device)
    pred, target = make_data((4, 3, 64, 48), device, torch.float32)
    amp = torch.bfloat16 if device == "cpu" else torch.float16
    with torch.autocast(device_type=device, dtype=amp):
        loss = ACBLoss()(model(pred), target)
    loss.backward()
    assert torch.isfinite(loss) and model.weight.grad is not None
    done.append(f"autocast({amp}) forward+backward")
    return done


def check_no_sync(device: str) -> list[str]:
    done: list[str] = []
    if device != "cuda":
        return ["(sync checks need CUDA: skipped)"]
    from acb_mse import ACBLoss as OriginalACBLoss

    pred, target = make_data((10, 3, 256, 256), device, torch.float32)
    pred.requires_grad_()
    ours = ACBLoss(0.5, 2.0)
    per_sample = ACBLoss(0.5, 2.0, reduction="mean")
    compiled = torch.compile(lambda p, t: ours(p, t) + per_sample(p, t), fullgraph=True)

    def eager_step() -> None:
        pred.grad = None
        (ours(pred, target) + per_sample(pred, target)).backward()

    def compiled_step() -> None:
        pred.grad = None
        compiled(pred, target).backward()

    for step in (eager_step, compiled_step):  # warm-up outside the sync check
        step()
        step()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(3):
            eager_step()
            compiled_step()
        with torch.autocast("cuda", dtype=torch.float16):
            ours(pred, target).backward()
    finally:
        torch.cuda.set_sync_debug_mode(0)
    torch.cuda.synchronize()
    done.append("no host sync: eager, torch.compile(fullgraph=True), autocast fwd+bwd")

    # CUDA graph: capture forward+backward with static tensors, replay, compare.
    static_pred = pred.detach().clone().requires_grad_()
    static_target = target.clone()
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            static_pred.grad = None
            ours(static_pred, static_target).backward()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    static_pred.grad = None
    with torch.cuda.graph(graph):
        static_loss = ours(static_pred, static_target)
        static_loss.backward()
    new_pred, new_target = make_data((10, 3, 256, 256), device, torch.float32, seed=1)
    with torch.no_grad():
        static_pred.copy_(new_pred)
    static_target.copy_(new_target)
    graph.replay()
    torch.cuda.synchronize()
    ref_loss, ref_grad, _ = loss_and_grads(
        lambda p, t: acb_mse(p, t, 0.5, 2.0, backend="kernel"), new_pred.cpu(), new_target.cpu()
    )
    torch.testing.assert_close(static_loss.detach().cpu(), ref_loss, rtol=1e-5, atol=0.0)
    assert static_pred.grad is not None
    torch.testing.assert_close(static_pred.grad.cpu(), ref_grad, rtol=1e-5, atol=1e-9)
    done.append("CUDA graph capture of fwd+bwd, replay on new data == CPU kernel")

    # Control: the original reads tensors on the host, so the same mode must catch it.
    original = OriginalACBLoss(0.5, 2.0)
    torch.cuda.set_sync_debug_mode("error")
    try:
        original(pred, target).backward()
    except RuntimeError as exc:
        done.append(f"control: the original raises under sync debug mode ({str(exc)[:60]}...)")
    else:
        raise AssertionError("control failed: the original ran without a host sync")
    finally:
        torch.cuda.set_sync_debug_mode(0)
    return done


def time_fwd_bwd(fn: Callable[[], None], device: str, repeats: int) -> float:
    """Median seconds of ``fn()`` (CUDA events on a GPU, perf_counter on CPU)."""
    import time

    for _ in range(5):
        fn()
    times = []
    for _ in range(repeats):
        if device == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
        else:
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def benchmark(device: str, repeats: int) -> dict[str, float]:
    from acb_mse import ACBLoss as OriginalACBLoss

    pred, target = make_data((10, 3, 256, 256), device, torch.float32)
    pred.requires_grad_()
    ours = ACBLoss()
    compiled = torch.compile(ours, fullgraph=True)
    original = OriginalACBLoss()

    def step(crit: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> Callable[[], None]:
        def run() -> None:
            pred.grad = None
            crit(pred, target).backward()

        return run

    times = {
        "ours_eager": time_fwd_bwd(step(ours), device, repeats),
        "ours_compiled": time_fwd_bwd(step(compiled), device, repeats),
        "original": time_fwd_bwd(step(original), device, repeats),
        "mse_loss": time_fwd_bwd(step(F.mse_loss), device, repeats),
    }
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu (dry run)")
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--quick", action="store_true", help="skip the timing")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        print("No CUDA GPU available: nothing checked (use --device cpu for a dry run).")
        return 2
    results: dict[str, Any] = {"device": args.device, "torch": torch.__version__}
    if args.device == "cuda":
        results["gpu"] = torch.cuda.get_device_name()
    print(f"device: {results.get('gpu', args.device)}, torch {torch.__version__}")
    try:
        results["checks"] = check_correctness(args.device) + check_no_sync(args.device)
    except AssertionError as exc:
        print(f"FAILED: {exc}")
        return 1
    for line in results["checks"]:
        print(f"  ok  {line}")
    if not args.quick:
        times = benchmark(args.device, args.repeats)
        results["fwd_bwd_seconds"] = times
        print("float32 (10, 3, 256, 256), ~2% hits, forward+backward, median:")
        for name, seconds in times.items():
            print(f"  {name:14s} {seconds * 1e6:10.1f} us")
        print(f"  original / ours_eager    = {times['original'] / times['ours_eager']:.1f}x")
        print(f"  original / ours_compiled = {times['original'] / times['ours_compiled']:.1f}x")
        print(f"  mse_loss / ours_compiled = {times['mse_loss'] / times['ours_compiled']:.2f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
