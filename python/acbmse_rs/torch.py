r"""PyTorch criterion for ACB-MSE: ``ACBLoss`` and the functional ``acb_mse``.

A drop-in replacement for ``acb_mse.ACBLoss`` (the original ``acb_mse`` package):

.. math::

    \mathrm{loss} = A \cdot \frac{1}{|Z|}\sum_{i \in Z} (x_i - y_i)^2
                  + B \cdot \frac{1}{|H|}\sum_{i \in H} (x_i - y_i)^2

where :math:`x` is the input (reconstruction), :math:`y` the target,
:math:`Z = \{i : y_i = 0\}`, :math:`H = \{i : y_i \ne 0\}` (a NaN target is in
:math:`H`), :math:`A` = ``zero_weighting`` and :math:`B` = ``nonzero_weighting``. An
empty class contributes 0; NaN and inf propagate (the original silently turns a NaN
class loss into 0).

Everything reduces to class statistics ``(n_zero, n_nonzero, sse_zero, sse_nonzero)``;
the loss is ``A * sse_zero / max(n_zero, 1) + B * sse_nonzero / max(n_nonzero, 1)``.
Two backends compute the statistics:

* ``"kernel"``: CPU float32/float64 tensors go through the Rust kernels of
  ``acbmse_rs._core``, registered as PyTorch custom operators. ``acbmse::acb_mse``
  (the loss) reads the data once, zero-copy and for any strides, to get the class
  counts and sums of squared errors, and keeps the coefficients
  ``w_c / max(n_c, 1)``; its backward is ``acbmse::scaled_diff``, one pass writing
  ``coef_c * (x - y)`` (itself differentiable, for double backward).
  ``acbmse::class_stats`` and ``acbmse::per_sample_stats``
  return the statistics themselves (differentiable in the sums), for ``sync_counts``
  and :func:`class_stats`. All have fake (meta) implementations and autograd
  registrations, so ``torch.library.opcheck`` passes and
  ``torch.compile(fullgraph=True)`` traces them without graph breaks.
* ``"tensor"``: a pure-tensor formulation (``where`` masks, full reductions, counts
  clamped to 1) with no boolean indexing, no ``nonzero``, no ``.item()`` and no Python
  branch on a tensor value, so it never synchronises a GPU with the host and runs
  under ``torch.compile(fullgraph=True)``, in CUDA graphs and under autocast.

``backend="auto"`` (the default) uses the kernel for CPU tensors and the tensor path
on every other device (CUDA, MPS, XPU, ``meta``, ...). float16 and bfloat16 inputs
accumulate in float32 on every device; the result has the input's dtype.
"""

import math
from typing import Literal, Optional

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor

from . import _core

__all__ = ["ACBLoss", "acb_mse", "class_stats"]

Backend = Literal["auto", "kernel", "tensor"]
Reduction = Literal["global", "none", "mean", "sum"]

_BACKENDS = ("auto", "kernel", "tensor")
_REDUCTIONS = ("global", "none", "mean", "sum")
_KERNEL_DTYPES = (torch.float32, torch.float64)


# --------------------------------------------------------------------------------------
# Custom operators (CPU, Rust kernels)
# --------------------------------------------------------------------------------------


@torch.library.custom_op("acbmse::acb_mse", mutates_args=(), device_types="cpu")
def _acb_mse_op(
    pred: Tensor,
    target: Tensor,
    zero_weighting: float,
    nonzero_weighting: float,
    per_sample: bool,
) -> tuple[Tensor, Tensor]:
    """The loss and the gradient coefficients ``[w0 / max(n0, 1), w1 / max(n1, 1)]``.

    One pass over the data (the Rust fold). The loss has ``pred``'s dtype and shape
    ``()`` (``(B,)`` with ``per_sample``); the coefficients are float64 of shape ``(2,)``
    (``(2, B)``) and are what the backward needs besides the data.
    """
    p = pred.detach().numpy()
    t = target.detach().numpy()
    if per_sample:
        n0, n1, s0, s1 = _core.per_sample_stats(p, t)
        c0 = zero_weighting / np.maximum(n0, 1).astype(np.float64)
        c1 = nonzero_weighting / np.maximum(n1, 1).astype(np.float64)
        loss = torch.from_numpy(c0 * s0 + c1 * s1).to(pred.dtype)
        return loss, torch.from_numpy(np.stack([c0, c1]))
    s = _core.class_stats(p, t)
    k0 = zero_weighting / max(s.n_zero, 1)
    k1 = nonzero_weighting / max(s.n_nonzero, 1)
    value = k0 * s.sse_zero + k1 * s.sse_nonzero
    return torch.tensor(value, dtype=pred.dtype), torch.tensor([k0, k1], dtype=torch.float64)


@_acb_mse_op.register_fake
def _acb_mse_fake(
    pred: Tensor,
    target: Tensor,
    zero_weighting: float,
    nonzero_weighting: float,
    per_sample: bool,
) -> tuple[Tensor, Tensor]:
    if per_sample:
        b = pred.shape[0]
        return pred.new_empty((b,)), pred.new_empty((2, b), dtype=torch.float64)
    return pred.new_empty(()), pred.new_empty((2,), dtype=torch.float64)


def _acb_mse_setup_context(
    ctx: torch.autograd.function.FunctionCtx,
    inputs: tuple[Tensor, Tensor, float, float, bool],
    output: tuple[Tensor, Tensor],
) -> None:
    pred, target = inputs[0], inputs[1]
    ctx.mark_non_differentiable(output[1])
    ctx.save_for_backward(pred, target, output[1])


def _acb_mse_backward(
    ctx: torch.autograd.function.FunctionCtx, grad_loss: Tensor, grad_coef: Optional[Tensor]
) -> tuple[Optional[Tensor], Optional[Tensor], None, None, None]:
    # d loss / d pred_i = 2 * w_c / n_c * (pred_i - target_i) for i in class c.
    pred, target, coef = ctx.saved_tensors  # type: ignore[attr-defined]
    needs_pred, needs_target = ctx.needs_input_grad[:2]  # type: ignore[attr-defined]
    if not (needs_pred or needs_target):
        return None, None, None, None, None
    grad = _scaled_diff_op(pred, target, coef * (2.0 * grad_loss))
    return (grad if needs_pred else None), (-grad if needs_target else None), None, None, None


@torch.library.custom_op("acbmse::class_stats", mutates_args=(), device_types="cpu")
def _class_stats_op(pred: Tensor, target: Tensor) -> Tensor:
    """Class statistics ``[n_zero, n_nonzero, sse_zero, sse_nonzero]`` (float64, (4,))."""
    s = _core.class_stats(pred.detach().numpy(), target.detach().numpy())
    return torch.tensor(
        [float(s.n_zero), float(s.n_nonzero), s.sse_zero, s.sse_nonzero], dtype=torch.float64
    )


@_class_stats_op.register_fake
def _class_stats_fake(pred: Tensor, target: Tensor) -> Tensor:
    return pred.new_empty((4,), dtype=torch.float64)


@torch.library.custom_op("acbmse::per_sample_stats", mutates_args=(), device_types="cpu")
def _per_sample_stats_op(pred: Tensor, target: Tensor) -> Tensor:
    """Per-sample class statistics, float64 of shape ``(4, B)``, rows as in class_stats."""
    n0, n1, s0, s1 = _core.per_sample_stats(pred.detach().numpy(), target.detach().numpy())
    stacked = np.stack([n0.astype(np.float64), n1.astype(np.float64), s0, s1])
    return torch.from_numpy(stacked)


@_per_sample_stats_op.register_fake
def _per_sample_stats_fake(pred: Tensor, target: Tensor) -> Tensor:
    return pred.new_empty((4, pred.shape[0]), dtype=torch.float64)


@torch.library.custom_op("acbmse::scaled_diff", mutates_args=(), device_types="cpu")
def _scaled_diff_op(pred: Tensor, target: Tensor, coef: Tensor) -> Tensor:
    """``coef[c] * (pred - target)`` for each element's class ``c`` (0: target == 0).

    ``coef`` has shape ``(2,)`` (one pair for the whole tensor) or ``(2, B)`` (one pair
    per sample along axis 0). Returns a new C-contiguous tensor of ``pred``'s shape.
    """
    out = torch.empty(pred.shape, dtype=pred.dtype)
    p = pred.detach().numpy()
    t = target.detach().numpy()
    o = out.numpy()
    c = coef.detach().to(torch.float64).tolist()
    if coef.dim() == 1:
        _core.scaled_diff_into(p, t, c[0], c[1], o, stats=False)
    else:
        for b in range(pred.shape[0]):
            _core.scaled_diff_into(
                p[b : b + 1], t[b : b + 1], c[0][b], c[1][b], o[b : b + 1], stats=False
            )
    return out


@_scaled_diff_op.register_fake
def _scaled_diff_fake(pred: Tensor, target: Tensor, coef: Tensor) -> Tensor:
    return torch.empty_like(pred, memory_format=torch.contiguous_format)


def _scaled_diff_setup_context(
    ctx: torch.autograd.function.FunctionCtx,
    inputs: tuple[Tensor, Tensor, Tensor],
    output: Tensor,
) -> None:
    ctx.save_for_backward(*inputs)


def _scaled_diff_backward(
    ctx: torch.autograd.function.FunctionCtx, grad: Tensor
) -> tuple[Optional[Tensor], Optional[Tensor], Optional[Tensor]]:
    # out_i = coef_c(i) * (pred_i - target_i): linear in pred, target and coef. This is
    # the second derivative of the loss (double backward), in plain tensor ops.
    pred, target, coef = ctx.saved_tensors  # type: ignore[attr-defined]
    needs_pred, needs_target, needs_coef = ctx.needs_input_grad  # type: ignore[attr-defined]
    hit = target != 0
    # Per-sample coefficients (2, B) broadcast along the sample axis.
    shape = (2,) + (() if coef.dim() == 1 else (pred.shape[0],) + (1,) * (pred.dim() - 1))
    c = coef.to(pred.dtype).reshape(shape)
    grad_pred = grad_target = grad_coef = None
    if needs_pred or needs_target:
        g = grad * torch.where(hit, c[1], c[0])
        grad_pred = g if needs_pred else None
        grad_target = -g if needs_target else None
    if needs_coef:
        gd = (grad * (pred - target)).to(coef.dtype)
        dims = tuple(range(pred.dim())) if coef.dim() == 1 else tuple(range(1, pred.dim()))
        zero = gd.new_zeros(())
        grad_coef = torch.stack(
            [torch.where(hit, zero, gd).sum(dims), torch.where(hit, gd, zero).sum(dims)]
        )
    return grad_pred, grad_target, grad_coef


_scaled_diff_op.register_autograd(_scaled_diff_backward, setup_context=_scaled_diff_setup_context)


def _stats_setup_context(
    ctx: torch.autograd.function.FunctionCtx, inputs: tuple[Tensor, Tensor], output: Tensor
) -> None:
    pred, target = inputs
    ctx.save_for_backward(pred, target)


def _stats_backward(
    ctx: torch.autograd.function.FunctionCtx, grad_stats: Tensor
) -> tuple[Optional[Tensor], Optional[Tensor]]:
    # d sse_c / d pred_i = 2 (pred_i - target_i) for i in class c; the counts are
    # piecewise constant, so their gradient is zero and grad_stats[:2] is ignored.
    pred, target = ctx.saved_tensors  # type: ignore[attr-defined]
    needs_pred, needs_target = ctx.needs_input_grad  # type: ignore[attr-defined]
    if not (needs_pred or needs_target):
        return None, None
    grad = _scaled_diff_op(pred, target, 2.0 * grad_stats[2:4])
    return (grad if needs_pred else None), (-grad if needs_target else None)


_class_stats_op.register_autograd(_stats_backward, setup_context=_stats_setup_context)
_per_sample_stats_op.register_autograd(_stats_backward, setup_context=_stats_setup_context)
_acb_mse_op.register_autograd(_acb_mse_backward, setup_context=_acb_mse_setup_context)


# --------------------------------------------------------------------------------------
# Pure-tensor statistics (any device, no host synchronisation)
# --------------------------------------------------------------------------------------


def _acc_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _tensor_stats(pred: Tensor, target: Tensor, per_sample: bool) -> tuple[Tensor, Tensor]:
    """Counts (int64) and sums of squared errors (accumulation dtype) of each class.

    Returns ``(counts, sse)``, each of shape ``(2,)`` or ``(2, B)``; row 0 is the zero
    class. Only elementwise ops and full-size reductions: no data-dependent shape.
    """
    acc = _acc_dtype(pred.dtype)
    p = pred.to(acc)
    t = target.to(acc)
    if per_sample:
        p = p.reshape(p.shape[0], -1)
        t = t.reshape(t.shape[0], -1)
        dims: tuple[int, ...] = (1,)
    else:
        dims = tuple(range(p.dim()))
    hit = t != 0  # NaN != 0, so a NaN target is a hit, as in the kernel
    sq = (p - t).square()
    zero = sq.new_zeros(())
    sse = torch.stack([torch.where(hit, zero, sq).sum(dims), torch.where(hit, sq, zero).sum(dims)])
    n_hit = hit.sum(dims)
    n_all = p[0].numel() if per_sample else p.numel()
    counts = torch.stack([n_all - n_hit, n_hit])
    return counts, sse


# --------------------------------------------------------------------------------------
# Functional API
# --------------------------------------------------------------------------------------


def _check_weight(name: str, w: float) -> float:
    w = float(w)
    # Comparisons only (False for NaN), so that torch.compile traces the check.
    if not (0.0 <= w < math.inf):
        raise ValueError(f"{name} must be a finite number >= 0, got {w}")
    return w


def _prepare(
    input: Tensor, target: Tensor, backend: str, per_sample: bool
) -> tuple[Tensor, Tensor, torch.dtype, bool]:
    """Validate; return ``(input, target)`` in the computation dtype, the output dtype
    and whether the Rust kernel runs."""
    if not isinstance(input, Tensor) or not isinstance(target, Tensor):
        raise TypeError(
            "input and target must be torch.Tensor, got "
            f"{type(input).__name__} and {type(target).__name__}"
        )
    if input.shape != target.shape:
        raise ValueError(
            "input and target must have the same shape (no broadcasting), got "
            f"input.shape={tuple(input.shape)} and target.shape={tuple(target.shape)}"
        )
    if input.numel() == 0:
        raise ValueError(
            f"input and target are empty (shape {tuple(input.shape)}); "
            "ACB-MSE needs at least one element"
        )
    if per_sample and input.dim() == 0:
        raise ValueError(
            "per-sample losses need tensors with at least 1 dimension (axis 0 = samples), "
            "got 0-d tensors"
        )
    if input.device != target.device:
        raise ValueError(
            f"input and target must be on the same device, got {input.device} and {target.device}"
        )
    out_dtype = torch.promote_types(input.dtype, target.dtype)
    if out_dtype.is_complex:
        raise TypeError(f"complex tensors are not supported, got {input.dtype} and {target.dtype}")
    if not out_dtype.is_floating_point:
        out_dtype = torch.get_default_dtype()
    if backend == "auto":
        use_kernel = input.device.type == "cpu"
    elif backend == "kernel":
        if input.device.type != "cpu" or target.device.type != "cpu":
            raise ValueError(
                "backend='kernel' needs CPU tensors, got devices "
                f"{input.device} and {target.device}; use backend='tensor' or 'auto'"
            )
        use_kernel = True
    elif backend == "tensor":
        use_kernel = False
    else:
        raise ValueError(f"backend must be one of {_BACKENDS}, got {backend!r}")
    # The kernel reads float32/float64 in place; half precision is widened to float32.
    dtype = (
        (out_dtype if out_dtype in _KERNEL_DTYPES else torch.float32) if use_kernel else out_dtype
    )
    if input.dtype != dtype:
        input = input.to(dtype)
    if target.dtype != dtype:
        target = target.to(dtype)
    return input, target, out_dtype, use_kernel


def class_stats(
    input: Tensor,
    target: Tensor,
    *,
    per_sample: bool = False,
    backend: Backend = "auto",
) -> tuple[Tensor, Tensor]:
    r"""Class counts and sums of squared errors, differentiable in the sums.

    .. math::

        n_Z = |Z|,\quad n_H = |H|,\quad
        s_Z = \sum_{i \in Z} (x_i - y_i)^2,\quad s_H = \sum_{i \in H} (x_i - y_i)^2

    Statistics of disjoint blocks add up; the loss is
    ``A * s_Z / max(n_Z, 1) + B * s_H / max(n_H, 1)``.

    Args:
        input: Predictions of any shape.
        target: Targets of the same shape; zero elements form the zero class Z.
        per_sample: Statistics of each sample along axis 0 instead of the whole tensor.
        backend: ``"auto"``, ``"kernel"`` (CPU only) or ``"tensor"``; see the module
            docstring.

    Returns:
        ``(counts, sse)``: row 0 is the zero class, row 1 the nonzero class. The kernel
        backend returns float64 for both; the tensor backend returns int64 counts and
        sums in the accumulation dtype (float64 for float64 input, float32 otherwise).
        Only ``sse`` carries gradients.

    Shape:
        - input, target: :math:`(*)` (:math:`(B, *)` with ``per_sample``).
        - counts, sse: :math:`(2,)` (:math:`(2, B)` with ``per_sample``).

    Example:
        >>> import torch
        >>> from acbmse_rs.torch import class_stats
        >>> pred = torch.tensor([1.0, 0.5], requires_grad=True)
        >>> counts, sse = class_stats(pred, torch.tensor([0.0, 1.0]))
        >>> counts.tolist(), sse.tolist()
        ([1.0, 1.0], [1.0, 0.25])
        >>> sse.sum().backward()
    """
    p, t, _, use_kernel = _prepare(input, target, backend, per_sample)
    if not use_kernel:
        return _tensor_stats(p, t, per_sample)
    stats = _per_sample_stats_op(p, t) if per_sample else _class_stats_op(p, t)
    return stats[:2].detach(), stats[2:]


def _loss_from_stats(
    counts: Tensor, sse: Tensor, zero_weighting: float, nonzero_weighting: float
) -> Tensor:
    n = counts.clamp(min=1).to(sse.dtype)
    return zero_weighting * (sse[0] / n[0]) + nonzero_weighting * (sse[1] / n[1])


def acb_mse(
    input: Tensor,
    target: Tensor,
    zero_weighting: float = 1.0,
    nonzero_weighting: float = 1.0,
    *,
    reduction: Reduction = "global",
    sync_counts: bool = False,
    process_group: Optional["dist.ProcessGroup"] = None,
    backend: Backend = "auto",
) -> Tensor:
    r"""Automatic Class-Balanced MSE of ``input`` against ``target``.

    .. math::

        \mathrm{loss} = A \cdot \frac{1}{|Z|}\sum_{i \in Z} (x_i - y_i)^2
                      + B \cdot \frac{1}{|H|}\sum_{i \in H} (x_i - y_i)^2

    with :math:`Z = \{i : y_i = 0\}`, :math:`H = \{i : y_i \ne 0\}`, :math:`A` =
    ``zero_weighting``, :math:`B` = ``nonzero_weighting``. An empty class contributes 0;
    NaN and inf propagate.

    Args:
        input: Predictions (the reconstruction), any shape, floating point.
        target: Targets, the same shape as ``input`` (no broadcasting). Integer or bool
            targets are converted to the input's dtype.
        zero_weighting: Weight A of the zero class (finite, >= 0).
        nonzero_weighting: Weight B of the nonzero class (finite, >= 0).
        reduction: ``"global"`` (default, as the original): one loss balanced over the
            whole tensor. ``"none"``: the loss of each sample along axis 0, each
            balanced by its own class counts, shape ``(B,)``. ``"mean"`` / ``"sum"``: the
            mean / sum of those per-sample losses.
        sync_counts: Under ``torch.distributed``, all-reduce the class counts so that
            every rank balances with the global class frequencies, and multiply the
            rank's loss by the world size W:
            ``loss_r = W * (A * s_Z,r / N_Z + B * s_H,r / N_H)`` with ``N_c`` the global
            counts. Then the mean of the ranks' losses equals the loss of the
            concatenated global batch, and the gradient DDP computes (the mean of the
            ranks' gradients) equals that loss's gradient, whatever the ranks' share
            of hits. Every rank must call the loss (it runs ``dist.all_reduce``). Only
            with ``reduction="global"``.
        process_group: Process group for ``sync_counts`` (default: the world).
        backend: ``"auto"`` (Rust kernel on CPU, tensor path elsewhere), ``"kernel"``
            or ``"tensor"`` (force the sync-free path, e.g. to test it on CPU).

    Returns:
        A 0-d tensor (``(B,)`` for ``reduction="none"``) on ``input``'s device, with
        dtype ``torch.promote_types(input.dtype, target.dtype)`` (the default float
        dtype if both are integer).

    Raises:
        ValueError: For mismatched shapes, empty input, a bad weight or option.
        TypeError: For non-tensor or complex input.

    Shape:
        - input: :math:`(*)`, target: the same; per-sample reductions need
          :math:`(B, *)`.
        - output: :math:`()`, or :math:`(B,)` for ``reduction="none"``.

    Example:
        >>> import torch
        >>> from acbmse_rs.torch import acb_mse
        >>> target = torch.tensor([0.0, 0.0, 0.0, 2.0])
        >>> pred = torch.tensor([0.0, 0.3, 0.0, 1.0], requires_grad=True)
        >>> loss = acb_mse(pred, target)  # 0.09 / 3 + 1 / 1
        >>> round(loss.item(), 6)
        1.03
        >>> loss.backward()
    """
    w0 = _check_weight("zero_weighting", zero_weighting)
    w1 = _check_weight("nonzero_weighting", nonzero_weighting)
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    if sync_counts and reduction != "global":
        raise ValueError(
            f"sync_counts=True needs reduction='global', got reduction={reduction!r} "
            "(per-sample losses are balanced within each sample)"
        )
    per_sample = reduction != "global"
    p, t, out_dtype, use_kernel = _prepare(input, target, backend, per_sample)
    if use_kernel and not sync_counts:
        # The common case: one fused operator forward, one backward.
        loss: Tensor = _acb_mse_op(p, t, w0, w1, per_sample)[0]
    else:
        if use_kernel:
            stats = _per_sample_stats_op(p, t) if per_sample else _class_stats_op(p, t)
            counts, sse = stats[:2].detach(), stats[2:]
        else:
            counts, sse = _tensor_stats(p, t, per_sample)
        if sync_counts:
            counts = counts.clone()
            dist.all_reduce(counts, group=process_group)
            loss = dist.get_world_size(process_group) * _loss_from_stats(counts, sse, w0, w1)
        else:
            loss = _loss_from_stats(counts, sse, w0, w1)
    if reduction == "mean":
        loss = loss.mean()
    elif reduction == "sum":
        loss = loss.sum()
    return loss if loss.dtype == out_dtype else loss.to(out_dtype)


class ACBLoss(torch.nn.Module):
    r"""ACB-MSE criterion, a drop-in replacement for ``acb_mse.ACBLoss``.

    .. math::

        \mathrm{loss} = A \cdot \mathrm{MSE}_{y = 0}(x, y) + B \cdot \mathrm{MSE}_{y \ne 0}(x, y)

    Each class's mean is over its own element count; an empty class contributes 0. See
    :func:`acb_mse` for the options.

    Args:
        zero_weighting: Weight A of the zero class (finite, >= 0), default 1.
        nonzero_weighting: Weight B of the nonzero class (finite, >= 0), default 1.
        reduction: ``"global"`` (default), ``"none"``, ``"mean"`` or ``"sum"``.
        sync_counts: All-reduce the class counts across ``torch.distributed`` ranks
            (see :func:`acb_mse` for the exact relation to the global-batch loss).
        process_group: Process group for ``sync_counts`` (default: the world).
        backend: ``"auto"``, ``"kernel"`` or ``"tensor"``.

    Shape:
        - reconstructed_image: :math:`(*)`, e.g. :math:`(B, C, H, W)`.
        - target_image: the same shape.
        - output: :math:`()` (or :math:`(B,)` for ``reduction="none"``).

    Example:
        >>> import torch
        >>> from acbmse_rs import ACBLoss
        >>> criterion = ACBLoss(zero_weighting=1.0, nonzero_weighting=1.0)
        >>> target = torch.zeros(2, 1, 8, 8)
        >>> target[:, :, 3, 4] = 1.0
        >>> pred = torch.rand(2, 1, 8, 8, requires_grad=True)
        >>> loss = criterion(pred, target)
        >>> loss.backward()
    """

    def __init__(
        self,
        zero_weighting: float = 1.0,
        nonzero_weighting: float = 1.0,
        *,
        reduction: Reduction = "global",
        sync_counts: bool = False,
        process_group: Optional["dist.ProcessGroup"] = None,
        backend: Backend = "auto",
    ) -> None:
        super().__init__()
        self.zero_weighting = _check_weight("zero_weighting", zero_weighting)
        self.nonzero_weighting = _check_weight("nonzero_weighting", nonzero_weighting)
        if reduction not in _REDUCTIONS:
            raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
        if backend not in _BACKENDS:
            raise ValueError(f"backend must be one of {_BACKENDS}, got {backend!r}")
        if sync_counts and reduction != "global":
            raise ValueError(
                f"sync_counts=True needs reduction='global', got reduction={reduction!r}"
            )
        self.reduction: Reduction = reduction
        self.sync_counts = sync_counts
        self.process_group = process_group
        self.backend: Backend = backend

    def forward(self, reconstructed_image: Tensor, target_image: Tensor) -> Tensor:
        """The ACB-MSE of ``reconstructed_image`` against ``target_image``."""
        return acb_mse(
            reconstructed_image,
            target_image,
            self.zero_weighting,
            self.nonzero_weighting,
            reduction=self.reduction,
            sync_counts=self.sync_counts,
            process_group=self.process_group,
            backend=self.backend,
        )

    def extra_repr(self) -> str:
        return (
            f"zero_weighting={self.zero_weighting}, nonzero_weighting={self.nonzero_weighting}, "
            f"reduction={self.reduction!r}, sync_counts={self.sync_counts}, "
            f"backend={self.backend!r}"
        )
