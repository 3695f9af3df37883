"""Tests of the PyTorch criterion ``acbmse_rs.torch`` (issue 3).

Kornia-style: smoke, errors, shapes, float64 gradcheck, dynamo, module == functional,
perfect prediction; plus parity with the original ``acb_mse.ACBLoss``, a NumPy float64
reference, the custom-operator checks (opcheck) and the proofs that the tensor path
never reads tensor data on the host (``meta`` tensors, aot_autograd unbacked-symbol
check).
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any, Callable

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from acbmse_rs.torch import (  # noqa: E402
    ACBLoss,
    _acb_mse_op,
    _class_stats_op,
    _per_sample_stats_op,
    _scaled_diff_op,
    acb_mse,
    class_stats,
)

BACKENDS = ["kernel", "tensor"]
RTOL = {torch.float32: 1e-5, torch.float64: 1e-12}


def reference(pred: Any, target: Any, w0: float = 1.0, w1: float = 1.0) -> float:
    """Independent float64 NumPy reference of ACB-MSE (empty class -> 0)."""
    p = np.asarray(pred, dtype=np.float64)
    t = np.asarray(target, dtype=np.float64)
    hit = t != 0
    d2 = (p - t) ** 2
    n0, n1 = int((~hit).sum()), int(hit.sum())
    l0 = d2[~hit].sum() / n0 if n0 else 0.0
    l1 = d2[hit].sum() / n1 if n1 else 0.0
    return float(w0 * l0 + w1 * l1)


def sparse_batch(
    shape: tuple[int, ...] = (4, 2, 12, 10),
    frac: float = 0.05,
    dtype: torch.dtype = torch.float32,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A detector-like target (mostly zeros, a few positive hits) and a noisy prediction."""
    g = torch.Generator().manual_seed(seed)
    target = torch.zeros(shape, dtype=torch.float64)
    hits = torch.rand(shape, generator=g, dtype=torch.float64) < frac
    target[hits] = torch.rand(int(hits.sum()), generator=g, dtype=torch.float64) + 0.5
    pred = target + 0.3 * torch.randn(shape, generator=g, dtype=torch.float64)
    return pred.to(dtype), target.to(dtype)


def original_loss_and_grads(
    pred: torch.Tensor, target: torch.Tensor, w0: float, w1: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    from acb_mse import ACBLoss as OriginalACBLoss

    p = pred.detach().clone().requires_grad_()
    t = target.detach().clone().requires_grad_()
    loss = OriginalACBLoss(w0, w1)(p, t)
    loss.backward()
    assert p.grad is not None and t.grad is not None
    return loss.detach(), p.grad, t.grad


def our_loss_and_grads(
    pred: torch.Tensor, target: torch.Tensor, w0: float, w1: float, backend: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    p = pred.detach().clone().requires_grad_()
    t = target.detach().clone().requires_grad_()
    loss = ACBLoss(w0, w1, backend=backend)(p, t)  # type: ignore[arg-type]
    loss.backward()
    assert p.grad is not None and t.grad is not None
    return loss.detach(), p.grad, t.grad


# --------------------------------------------------------------------------------------
# Smoke, import, module == functional
# --------------------------------------------------------------------------------------


def test_import_acbmse_rs_does_not_import_torch() -> None:
    code = (
        "import sys, acbmse_rs; assert 'torch' not in sys.modules; "
        "from acbmse_rs import ACBLoss; assert 'torch' in sys.modules; "
        "import acbmse_rs.torch as m; assert ACBLoss is m.ACBLoss; print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


@pytest.mark.parametrize("backend", ["auto", *BACKENDS])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_smoke_matches_reference(backend: str, dtype: torch.dtype) -> None:
    pred, target = sparse_batch(dtype=dtype)
    loss = ACBLoss(0.5, 3.0, backend=backend)(pred, target)  # type: ignore[arg-type]
    assert isinstance(loss, torch.Tensor)
    assert loss.shape == () and loss.dtype == dtype and loss.device == pred.device
    expected = reference(pred.numpy(), target.numpy(), 0.5, 3.0)
    assert loss.item() == pytest.approx(expected, rel=RTOL[dtype])


def test_module_equals_functional_and_repr() -> None:
    pred, target = sparse_batch()
    crit = ACBLoss(2.0, 0.25, reduction="mean")
    assert torch.equal(crit(pred, target), acb_mse(pred, target, 2.0, 0.25, reduction="mean"))
    assert "zero_weighting=2.0" in repr(crit) and "reduction='mean'" in repr(crit)


def test_worked_example() -> None:
    target = torch.tensor([0.0, 0.0, 0.0, 2.0])
    pred = torch.tensor([0.0, 0.3, 0.0, 1.0], requires_grad=True)
    loss = acb_mse(pred, target)
    assert loss.item() == pytest.approx(0.09 / 3 + 1.0, rel=1e-6)
    loss.backward()
    expected = torch.tensor([0.0, 2 * 0.3 / 3, 0.0, 2 * (1.0 - 2.0) / 1])
    assert pred.grad is not None
    torch.testing.assert_close(pred.grad, expected)


@pytest.mark.parametrize("backend", BACKENDS)
def test_perfect_prediction_is_zero_with_zero_grad(backend: str) -> None:
    _, target = sparse_batch()
    pred = target.clone().requires_grad_()
    loss = acb_mse(pred, target, backend=backend)  # type: ignore[arg-type]
    loss.backward()
    assert loss.item() == 0.0
    assert pred.grad is not None and torch.count_nonzero(pred.grad) == 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_inputs_not_modified(backend: str) -> None:
    pred, target = sparse_batch()
    p0, t0 = pred.clone(), target.clone()
    pred.requires_grad_()
    acb_mse(pred, target, backend=backend).backward()  # type: ignore[arg-type]
    assert torch.equal(pred.detach(), p0) and torch.equal(target, t0)


def test_class_stats() -> None:
    for backend in BACKENDS:
        counts, sse = class_stats(
            torch.tensor([1.0, 0.5]),
            torch.tensor([0.0, 1.0]),
            backend=backend,  # type: ignore[arg-type]
        )
        assert counts.tolist() == [1, 1] and sse.tolist() == [1.0, 0.25]


@pytest.mark.parametrize("backend", BACKENDS)
def test_class_stats_gradients_and_loss_relation(backend: str) -> None:
    """The statistics route (used by sync_counts) equals the fused loss, with grads."""
    pred, target = sparse_batch((3, 2, 6, 5), 0.2, torch.float64)
    kw: dict[str, Any] = {"backend": backend}
    for per_sample in (False, True):
        p1 = pred.clone().requires_grad_()
        p2 = pred.clone().requires_grad_()
        counts, sse = class_stats(p1, target, per_sample=per_sample, **kw)
        assert counts.shape == sse.shape == ((2, 3) if per_sample else (2,))
        assert not counts.requires_grad and sse.requires_grad
        n = counts.clamp(min=1).to(sse.dtype)
        from_stats = 0.5 * sse[0] / n[0] + 2.0 * sse[1] / n[1]
        fused = acb_mse(p2, target, 0.5, 2.0, reduction="none" if per_sample else "global", **kw)
        torch.testing.assert_close(from_stats, fused, rtol=1e-13, atol=0.0)
        from_stats.sum().backward()
        fused.sum().backward()
        assert p1.grad is not None and p2.grad is not None
        torch.testing.assert_close(p1.grad, p2.grad, rtol=1e-13, atol=1e-16)


# --------------------------------------------------------------------------------------
# Parity with the original acb_mse.ACBLoss (values and gradients)
# --------------------------------------------------------------------------------------

PARITY_CASES = [
    ((4, 2, 12, 10), 0.05, 1.0, 1.0),
    ((3, 1, 16, 11), 0.5, 0.3, 2.5),
    ((2, 128, 88), 200 / 11264, 1.0, 1.0),  # DEEPCLEAN3D-like: ~200 hits in 128x88
    ((7,), 0.3, 0.0, 1.0),
    ((5, 6), 0.0, 1.0, 1.0),  # no hits: the nonzero class is empty
    ((5, 6), 1.0, 1.0, 2.0),  # all hits: the zero class is empty
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape,frac,w0,w1", PARITY_CASES)
def test_parity_with_original(
    shape: tuple[int, ...], frac: float, w0: float, w1: float, dtype: torch.dtype, backend: str
) -> None:
    pred, target = sparse_batch(shape, frac, dtype, seed=len(shape) + int(frac * 100))
    o_loss, o_gp, o_gt = original_loss_and_grads(pred, target, w0, w1)
    loss, gp, gt = our_loss_and_grads(pred, target, w0, w1, backend)
    rtol = RTOL[dtype]
    assert loss.dtype == dtype
    torch.testing.assert_close(loss, o_loss.to(dtype), rtol=rtol, atol=0.0)
    atol = 1e-7 if dtype == torch.float32 else 1e-14
    torch.testing.assert_close(gp, o_gp, rtol=rtol, atol=atol)
    torch.testing.assert_close(gt, o_gt, rtol=rtol, atol=atol)


def test_parity_with_original_hypothesis() -> None:
    hypothesis = pytest.importorskip("hypothesis")
    st = hypothesis.strategies
    hnp = pytest.importorskip("hypothesis.extra.numpy")

    values = st.sampled_from([0.0, 0.0, 0.0, 1.0, -2.5, 0.125, 3.0])
    arrays = hnp.arrays(
        np.float64, hnp.array_shapes(min_dims=1, max_dims=3, max_side=6), elements=values
    )

    @hypothesis.settings(max_examples=40, deadline=None)
    @hypothesis.given(arrays, st.integers(0, 2**31 - 1), st.floats(0, 4), st.floats(0, 4))
    def check(target_np: np.ndarray, seed: int, w0: float, w1: float) -> None:
        target = torch.from_numpy(target_np)
        g = torch.Generator().manual_seed(seed)
        pred = target + torch.randn(target.shape, generator=g, dtype=torch.float64)
        o_loss, o_gp, _ = original_loss_and_grads(pred, target, w0, w1)
        for backend in BACKENDS:
            loss, gp, _ = our_loss_and_grads(pred, target, w0, w1, backend)
            torch.testing.assert_close(loss, o_loss.to(loss.dtype), rtol=1e-12, atol=1e-300)
            torch.testing.assert_close(gp, o_gp, rtol=1e-12, atol=1e-14)

    check()


# --------------------------------------------------------------------------------------
# Semantics: NaN/inf propagate, dtypes, layouts
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_nan_propagates_where_original_zeroes_it(backend: str) -> None:
    from acb_mse import ACBLoss as OriginalACBLoss

    pred, target = sparse_batch()
    target[0, 0, 0, 0] = float("nan")
    assert torch.isfinite(OriginalACBLoss()(pred, target))  # the original hides the NaN
    assert torch.isnan(acb_mse(pred, target, backend=backend))  # type: ignore[arg-type]
    pred2, target2 = sparse_batch()
    pred2[target2 == 0] = float("nan")  # NaN in the zero class only
    assert torch.isnan(acb_mse(pred2, target2, backend=backend))  # type: ignore[arg-type]


@pytest.mark.parametrize("backend", BACKENDS)
def test_inf_propagates(backend: str) -> None:
    pred, target = sparse_batch()
    pred[1, 1, 1, 1] = float("inf")
    assert acb_mse(pred, target, backend=backend).item() == float("inf")  # type: ignore[arg-type]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_accumulates_in_float32(backend: str, dtype: torch.dtype) -> None:
    # 64k elements: summing in half precision would be far off (float16 overflows).
    pred, target = sparse_batch((4, 128, 128), 0.02)
    pred = (pred * 30).to(dtype).requires_grad_()
    target = (target * 30).to(dtype)
    loss = acb_mse(pred, target, backend=backend)  # type: ignore[arg-type]
    assert loss.dtype == dtype
    expected = reference(pred.detach().float().numpy(), target.float().numpy())
    assert loss.float().item() == pytest.approx(expected, rel=1e-2)
    loss.backward()
    assert pred.grad is not None and pred.grad.dtype == dtype
    assert torch.isfinite(pred.grad).all()


def test_mixed_and_integer_dtypes() -> None:
    pred, target = sparse_batch()
    assert acb_mse(pred, target.double()).dtype == torch.float64
    int_target = (target > 0).to(torch.int64)
    loss = acb_mse(pred, int_target)
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(reference(pred.numpy(), int_target.numpy()), rel=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_non_contiguous_layouts(backend: str) -> None:
    pred, target = sparse_batch((4, 6, 10, 8), 0.2, torch.float64)
    cases = {
        "transposed": (pred.transpose(1, 3), target.transpose(1, 3)),
        "sliced": (pred[:, ::2, 1:, ::3], target[:, ::2, 1:, ::3]),
        "channels_last": (
            pred.contiguous(memory_format=torch.channels_last),
            target.contiguous(memory_format=torch.channels_last),
        ),
        "expanded": (pred[:1].expand(3, -1, -1, -1), target[:1].expand(3, -1, -1, -1)),
    }
    for name, (p, t) in cases.items():
        assert not p.is_contiguous() or name == "channels_last"
        pc = p.detach().contiguous().requires_grad_()
        pv = p.detach().clone(memory_format=torch.preserve_format).requires_grad_()
        if name == "expanded":
            pv = p.detach()  # an expanded leaf cannot require grad; value only
        loss = acb_mse(pv, t, backend=backend)  # type: ignore[arg-type]
        ref = acb_mse(pc, t.contiguous(), backend=backend)  # type: ignore[arg-type]
        assert loss.item() == pytest.approx(reference(p.numpy(), t.numpy()), rel=1e-12), name
        if pv.requires_grad:
            loss.backward()
            ref.backward()
            assert pv.grad is not None and pc.grad is not None
            torch.testing.assert_close(pv.grad, pc.grad, rtol=1e-12, atol=0.0)


def test_backends_agree() -> None:
    pred, target = sparse_batch((3, 5, 17, 13), 0.1, torch.float64)
    a, ga, _ = our_loss_and_grads(pred, target, 0.7, 1.3, "kernel")
    b, gb, _ = our_loss_and_grads(pred, target, 0.7, 1.3, "tensor")
    torch.testing.assert_close(a, b, rtol=1e-13, atol=0.0)
    torch.testing.assert_close(ga, gb, rtol=1e-13, atol=1e-16)


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradient_only_to_target(backend: str) -> None:
    pred, target = sparse_batch(dtype=torch.float64)
    target.requires_grad_()
    acb_mse(pred, target, backend=backend).backward()  # type: ignore[arg-type]
    _, o_gp, _ = original_loss_and_grads(pred, target, 1.0, 1.0)
    assert target.grad is not None
    torch.testing.assert_close(target.grad, -o_gp, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("backend", BACKENDS)
def test_autocast_cpu(backend: str) -> None:
    model = torch.nn.Conv2d(2, 2, 3, padding=1)
    x, target = sparse_batch()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
        assert out.dtype == torch.bfloat16
        loss = acb_mse(out, target, backend=backend)  # type: ignore[arg-type]
    assert loss.dtype == torch.float32  # promote_types(bfloat16, float32)
    loss.backward()
    assert model.weight.grad is not None and torch.isfinite(model.weight.grad).all()


# --------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_errors(backend: str) -> None:
    pred, target = sparse_batch()
    kw: dict[str, Any] = {"backend": backend}
    with pytest.raises(ValueError, match=r"same shape.*\(4, 2, 12, 10\).*\(4, 2, 12, 1\)"):
        acb_mse(pred, target[..., :1], **kw)
    with pytest.raises(ValueError, match=r"empty \(shape \(0, 3\)\)"):
        acb_mse(torch.empty(0, 3), torch.empty(0, 3), **kw)
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match=f"zero_weighting must be .* got {bad}"):
            acb_mse(pred, target, bad, **kw)
        with pytest.raises(ValueError, match=f"nonzero_weighting must be .* got {bad}"):
            ACBLoss(1.0, bad)
    with pytest.raises(ValueError, match="reduction must be one of .* got 'median'"):
        acb_mse(pred, target, reduction="median", **kw)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least 1 dimension"):
        acb_mse(torch.tensor(1.0), torch.tensor(0.0), reduction="none", **kw)
    with pytest.raises(ValueError, match="sync_counts=True needs reduction='global'"):
        acb_mse(pred, target, sync_counts=True, reduction="none", **kw)
    with pytest.raises(TypeError, match="must be torch.Tensor, got ndarray"):
        acb_mse(pred.numpy(), target, **kw)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="same device, got cpu and meta"):
        acb_mse(pred, target.to("meta"), **kw)
    with pytest.raises(TypeError, match="complex"):
        acb_mse(pred.to(torch.complex64), target.to(torch.complex64), **kw)


def test_option_errors() -> None:
    with pytest.raises(ValueError, match="backend must be one of .* got 'gpu'"):
        ACBLoss(backend="gpu")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="backend='kernel' needs CPU tensors, got devices meta"):
        acb_mse(torch.empty(3, device="meta"), torch.empty(3, device="meta"), backend="kernel")


# --------------------------------------------------------------------------------------
# Per-sample losses
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_per_sample(backend: str) -> None:
    pred, target = sparse_batch((5, 2, 9, 7), 0.08, torch.float64)
    target[2] = 0.0  # a sample without hits
    target[3] = 1.0  # a sample that is all hits
    p = pred.clone().requires_grad_()
    losses = acb_mse(p, target, 0.5, 2.0, reduction="none", backend=backend)  # type: ignore[arg-type]
    assert losses.shape == (5,) and losses.dtype == torch.float64
    expected = [reference(pred[k].numpy(), target[k].numpy(), 0.5, 2.0) for k in range(5)]
    torch.testing.assert_close(
        losses, torch.tensor(expected, dtype=torch.float64), rtol=1e-12, atol=0.0
    )
    kw: dict[str, Any] = {"backend": backend}
    mean = acb_mse(pred, target, 0.5, 2.0, reduction="mean", **kw)
    total = acb_mse(pred, target, 0.5, 2.0, reduction="sum", **kw)
    assert mean.item() == pytest.approx(float(np.mean(expected)), rel=1e-12)
    assert total.item() == pytest.approx(float(np.sum(expected)), rel=1e-12)
    # Gradient of a weighted sum of per-sample losses equals the per-sample gradients.
    weights = torch.arange(1.0, 6.0, dtype=torch.float64)
    (losses * weights).sum().backward()
    for k in range(5):
        pk = pred[k].clone().requires_grad_()
        (weights[k] * acb_mse(pk, target[k], 0.5, 2.0, **kw)).backward()
        assert p.grad is not None and pk.grad is not None
        torch.testing.assert_close(p.grad[k], pk.grad, rtol=1e-12, atol=1e-16)


def test_per_sample_one_dimensional() -> None:
    pred = torch.tensor([1.0, 2.0, 0.5])
    target = torch.tensor([0.0, 2.0, 1.0])
    for backend in BACKENDS:
        losses = acb_mse(pred, target, reduction="none", backend=backend)  # type: ignore[arg-type]
        assert losses.tolist() == [1.0, 0.0, 0.25]


# --------------------------------------------------------------------------------------
# Autograd: gradcheck in float64
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("reduction", ["global", "none"])
def test_gradcheck_input_and_target(backend: str, reduction: str) -> None:
    pred, target = sparse_batch((3, 2, 4, 5), 0.3, torch.float64, seed=3)
    hit = target != 0
    hit_values = target[hit].clone().requires_grad_()
    pred.requires_grad_()

    # Finite differences may not move a zero target off zero (that changes its class),
    # so the target's hit values are the differentiable input; zeros stay zeros.
    def fn(p: torch.Tensor, hv: torch.Tensor) -> torch.Tensor:
        t = torch.zeros_like(p).index_put((hit,), hv)
        return acb_mse(p, t, 0.7, 1.9, reduction=reduction, backend=backend)  # type: ignore[arg-type]

    assert torch.autograd.gradcheck(fn, (pred, hit_values))
    # And the input alone with a target that requires grad, through the op directly.
    t_all = target.clone().requires_grad_()
    fn2: Callable[..., torch.Tensor] = lambda p, t: acb_mse(p, t, backend=backend)  # noqa: E731
    assert torch.autograd.gradcheck(fn2, (pred, t_all.detach() + 1.0))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("reduction", ["global", "none"])
def test_gradgradcheck(backend: str, reduction: str) -> None:
    """Double backward (the backward operator has its own autograd formula)."""
    pred, target = sparse_batch((3, 2, 3, 4), 0.3, torch.float64, seed=5)
    pred.requires_grad_()

    def fn(p: torch.Tensor) -> torch.Tensor:
        return acb_mse(p, target, 0.7, 1.9, reduction=reduction, backend=backend)  # type: ignore[arg-type]

    assert torch.autograd.gradgradcheck(fn, (pred,))
    hessian = torch.autograd.functional.hessian(lambda p: fn(p).sum(), pred)
    # The loss is quadratic in pred: the Hessian is diagonal, 2 * w_c / n_c.
    diag = hessian.reshape(pred.numel(), pred.numel()).diagonal()
    assert torch.count_nonzero(hessian) == torch.count_nonzero(diag)


def test_scaled_diff_gradcheck() -> None:
    pred, target = sparse_batch((3, 2, 3, 4), 0.3, torch.float64, seed=6)
    pred.requires_grad_()
    for coef in (torch.rand(2, dtype=torch.float64), torch.rand(2, 3, dtype=torch.float64)):
        assert torch.autograd.gradcheck(_scaled_diff_op, (pred, target, coef.requires_grad_()))


# --------------------------------------------------------------------------------------
# Custom operators
# --------------------------------------------------------------------------------------


def test_opcheck_custom_ops() -> None:
    pred, target = sparse_batch((3, 2, 5, 4), 0.2)
    pred_t = pred.transpose(1, 3)
    target_t = target.transpose(1, 3)
    for dtype in (torch.float32, torch.float64):
        for p, t in ((pred, target), (pred_t, target_t)):
            p = p.to(dtype).requires_grad_()
            t = t.to(dtype)
            for per_sample in (False, True):
                args = (p, t, 0.5, 2.0, per_sample)
                torch.library.opcheck(_acb_mse_op, args)
                torch.library.opcheck(_acb_mse_op, (p, t.clone().requires_grad_(), *args[2:]))
            torch.library.opcheck(_class_stats_op, (p, t))
            torch.library.opcheck(_per_sample_stats_op, (p, t))
            torch.library.opcheck(_per_sample_stats_op, (p, t.clone().requires_grad_()))
            coef = torch.tensor([0.5, -2.0], dtype=torch.float64)
            torch.library.opcheck(_scaled_diff_op, (p.detach(), t, coef))
            torch.library.opcheck(_scaled_diff_op, (p, t, coef.clone().requires_grad_()))
            coef_ps = torch.rand(2, 3, dtype=torch.float64)
            torch.library.opcheck(_scaled_diff_op, (p.detach(), t, coef_ps))
            torch.library.opcheck(_scaled_diff_op, (p, t, coef_ps.clone().requires_grad_()))


def test_ops_are_registered_under_acbmse_namespace() -> None:
    assert torch.ops.acbmse.acb_mse.default is not None
    assert torch.ops.acbmse.class_stats.default is not None
    assert torch.ops.acbmse.per_sample_stats.default is not None
    assert torch.ops.acbmse.scaled_diff.default is not None


# --------------------------------------------------------------------------------------
# torch.compile and the sync-free proofs
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["auto", "tensor"])
def test_compile_fullgraph_model(backend: str) -> None:
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(2, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(4, 2, 1)
    )
    crit = ACBLoss(0.5, 2.0, backend=backend)  # type: ignore[arg-type]
    per_sample = ACBLoss(0.5, 2.0, reduction="mean", backend=backend)  # type: ignore[arg-type]
    x, target = sparse_batch((3, 2, 12, 10), 0.1)

    def step(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        out = model(x)
        return crit(out, t) + per_sample(out, t)

    compiled = torch.compile(step, fullgraph=True)
    loss_c = compiled(x, target)
    loss_c.backward()
    grads_c = [p.grad.clone() for p in model.parameters() if p.grad is not None]
    model.zero_grad()
    loss_e = step(x, target)
    loss_e.backward()
    grads_e = [p.grad for p in model.parameters() if p.grad is not None]
    torch.testing.assert_close(loss_c, loss_e, rtol=1e-5, atol=1e-7)
    for gc, ge in zip(grads_c, grads_e):
        torch.testing.assert_close(gc, ge, rtol=1e-4, atol=1e-6)


def test_tensor_path_runs_on_meta_tensors() -> None:
    # meta tensors hold no data: any host read of a value (item, nonzero, boolean
    # indexing, a Python branch on a tensor) raises.
    for reduction in ("global", "none", "mean"):
        pred = torch.empty(4, 2, 16, 8, device="meta", requires_grad=True)
        target = torch.empty(4, 2, 16, 8, device="meta", requires_grad=True)
        loss = ACBLoss(0.5, 2.0, reduction=reduction)(pred, target)  # type: ignore[arg-type]
        assert loss.device.type == "meta"
        loss.sum().backward()
        assert pred.grad is not None and pred.grad.shape == pred.shape
        assert target.grad is not None and target.grad.shape == target.shape
    half = torch.empty(3, 5, device="meta", dtype=torch.float16, requires_grad=True)
    out = acb_mse(half, torch.empty(3, 5, device="meta", dtype=torch.float16))
    assert out.dtype == torch.float16
    out.backward()


def test_original_fails_on_meta_tensors() -> None:
    """Control: the meta check catches the original's boolean indexing."""
    from acb_mse import ACBLoss as OriginalACBLoss

    pred = torch.empty(2, 8, device="meta")
    with pytest.raises((NotImplementedError, RuntimeError)):
        OriginalACBLoss()(pred, torch.empty(2, 8, device="meta"))


def _reject_unbacked(gm: torch.fx.GraphModule, example_inputs: Any) -> Any:
    from functorch.compile import make_boxed_func
    from torch.fx.experimental.symbolic_shapes import free_unbacked_symbols

    for node in gm.graph.nodes:
        val = node.meta.get("val")
        if val is not None and free_unbacked_symbols(val):
            raise AssertionError(f"data-dependent (unbacked) value: {node.format_node()}")
    return make_boxed_func(gm.forward)


def _compile_with_unbacked_check(
    fn: Callable[..., torch.Tensor], dynamic: bool
) -> Callable[..., torch.Tensor]:
    from torch._dynamo.backends.common import aot_autograd

    backend = aot_autograd(fw_compiler=_reject_unbacked, bw_compiler=_reject_unbacked)
    return torch.compile(fn, backend=backend, fullgraph=True, dynamic=dynamic)


@pytest.mark.parametrize("dynamic", [False, True])
def test_tensor_path_has_no_unbacked_symbols(dynamic: bool) -> None:
    pred, target = sparse_batch((3, 2, 8, 6), 0.1)
    # Let dynamo capture .item() and data-dependent shapes, so that only the checker
    # (not a graph break) can reject them.
    with torch._dynamo.config.patch(
        capture_scalar_outputs=True, capture_dynamic_output_shape_ops=True
    ):
        for reduction in ("global", "mean"):
            torch._dynamo.reset()

            def fn(p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
                return acb_mse(p, t, 0.5, 2.0, reduction=reduction, backend="tensor")  # noqa: B023

            p = pred.clone().requires_grad_()
            t = target.clone().requires_grad_()
            loss = _compile_with_unbacked_check(fn, dynamic)(p, t)
            loss.backward()  # runs the backward compiler too
            assert p.grad is not None and t.grad is not None
            assert loss.item() == pytest.approx(fn(pred, target).item(), rel=1e-6)

        # Control: boolean-mask indexing compiles under these settings, but the checker
        # rejects its data-dependent shape.
        torch._dynamo.reset()

        def masked(p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            hit = t != 0
            return ((p[hit] - t[hit]) ** 2).mean()

        with pytest.raises(Exception, match="unbacked"):
            _compile_with_unbacked_check(masked, dynamic)(pred.clone().requires_grad_(), target)
    torch._dynamo.reset()


def test_gpu_check_script_dry_run_on_cpu() -> None:
    """benchmarks/gpu_check.py must stay ready to run: its checks pass with --device cpu."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"
    if not path.exists():
        pytest.skip("benchmarks/gpu_check.py not in this checkout")
    spec = importlib.util.spec_from_file_location("gpu_check", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    checks = module.check_correctness("cpu") + module.check_no_sync("cpu")
    assert any("float32 reduction=global" in line for line in checks)
    assert any("bfloat16" in line for line in checks)
