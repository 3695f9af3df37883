"""DDP test of ``ACBLoss(sync_counts=True)``: 2 processes, gloo backend, CPU.

The documented relation, checked here for both backends: with the global class
counts all-reduced and the per-rank loss multiplied by the world size W,

* the mean of the ranks' losses equals the single-process loss on the concatenated
  global batch, and
* DDP's averaged gradient equals that single-process loss's gradient,

even when the ranks hold very different numbers of hits. Without ``sync_counts`` the
gradient differs (a control that the test is sensitive).
"""

from __future__ import annotations

import gc
import socket

import pytest

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")

WORLD = 2


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _global_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """4 samples; rank 0 gets many hits, rank 1 few, so local and global counts differ."""
    g = torch.Generator().manual_seed(7)
    x = torch.randn(4, 1, 12, 10, generator=g, dtype=torch.float64)
    target = torch.zeros(4, 1, 12, 10, dtype=torch.float64)
    for k, frac in enumerate((0.30, 0.20, 0.02, 0.05)):
        hits = torch.rand(1, 12, 10, generator=g, dtype=torch.float64) < frac
        target[k][hits] = 1.0 + torch.rand(int(hits.sum()), generator=g, dtype=torch.float64)
    return x, target


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Conv2d(1, 1, 3, padding=1).double()


def _worker(rank: int, port: int) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD
    )
    try:
        for backend in ("kernel", "tensor"):
            _check_relation(rank, backend)
        # Tear down in step: free the DDP reducers, then let both ranks reach this
        # point before either destroys the group (rank 0 hosts the TCP store; a rank
        # still talking to it when it goes away aborts in gloo's C++ threads).
        gc.collect()
        dist.barrier()
    finally:
        dist.destroy_process_group()


def _check_relation(rank: int, backend: str) -> None:
    from acbmse_rs.torch import ACBLoss
    from torch.nn.parallel import DistributedDataParallel as DDP

    x, target = _global_batch()
    # Single-process reference on the concatenated global batch.
    ref_model = _model()
    ref_loss = ACBLoss(0.5, 2.0, backend=backend)(ref_model(x), target)
    ref_loss.backward()
    ref_grads = [p.grad for p in ref_model.parameters()]

    local = slice(2 * rank, 2 * rank + 2)
    for sync in (True, False):
        ddp = DDP(_model())
        crit = ACBLoss(0.5, 2.0, sync_counts=sync, backend=backend)
        loss = crit(ddp(x[local]), target[local])
        loss.backward()  # DDP averages the gradients over the ranks here
        mean_loss = loss.detach().clone()
        dist.all_reduce(mean_loss)
        mean_loss /= WORLD
        grads = [p.grad for p in ddp.module.parameters()]
        same = all(torch.allclose(g, r, rtol=1e-10, atol=1e-14) for g, r in zip(grads, ref_grads))
        if sync:
            torch.testing.assert_close(mean_loss, ref_loss.detach(), rtol=1e-12, atol=0.0)
            assert same, f"rank {rank}: DDP gradient != global-batch gradient"
        else:
            assert not same, "control: without sync_counts the gradients should differ"


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed unavailable")
def test_sync_counts_matches_global_batch_under_ddp() -> None:
    import torch.multiprocessing as mp

    # One spawn for both backends: starting processes dominates the run time.
    mp.spawn(_worker, args=(_free_port(),), nprocs=WORLD, join=True)
