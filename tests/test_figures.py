"""Checks the numbers behind the README's evidence figures (no matplotlib needed)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

FIGURES = Path(__file__).resolve().parent.parent / "docs" / "figures"


def _load(name: str):
    """Import ``docs/figures/<name>.py`` by path (docs/ is not a package)."""
    spec = importlib.util.spec_from_file_location(f"_figures_{name}", FIGURES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def sweep() -> dict[str, np.ndarray]:
    """The full stability sweep of a 128x88 target, 2 to 11,264 hits."""
    return _load("stability").stability_sweep()


def test_sweep_covers_the_whole_image(sweep):
    n = sweep["n_hits"]
    assert n[0] == 2 and n[-1] == 128 * 88
    assert np.all(np.diff(n) == 2)
    assert all(len(sweep[k]) == len(n) for k in ("acb_mse", "mse", "mae"))


def test_acb_mse_is_constant_to_float_precision(sweep):
    acb = sweep["acb_mse"]
    # Every missed hit costs hit_value**2 and half the hits are missed: 0.5 * 0.5**2.
    np.testing.assert_allclose(acb, 0.125, rtol=4 * np.finfo(np.float64).eps, atol=0)
    assert np.ptp(acb) <= 4 * np.finfo(np.float64).eps * 0.125


def test_mse_and_mae_grow_strictly_with_the_number_of_hits(sweep):
    assert np.all(np.diff(sweep["mse"]) > 0)
    assert np.all(np.diff(sweep["mae"]) > 0)
    # Both are proportional to the number of missed hits, n / 2, over 11,264 pixels.
    n = sweep["n_hits"]
    np.testing.assert_allclose(sweep["mse"], (n / 2) * 0.25 / (128 * 88), rtol=1e-12)
    np.testing.assert_allclose(sweep["mae"], (n / 2) * 0.5 / (128 * 88), rtol=1e-12)


def test_sweep_is_independent_of_the_fill_order():
    module = _load("stability")
    a = module.stability_sweep(height=8, width=6, seed=1)
    b = module.stability_sweep(height=8, width=6, seed=2)
    for key in ("acb_mse", "mse", "mae"):
        np.testing.assert_array_equal(a[key], b[key])


def test_odd_pixel_count_is_rejected():
    with pytest.raises(ValueError, match="must be even"):
        _load("stability").stability_sweep(height=3, width=3)


def test_training_images_hold_the_requested_hits_and_disjoint_noise():
    pytest.importorskip("torch")
    training = _load("training")
    noisy, clean = training.make_images(20, hits=100, noise=80, seed=3)
    assert noisy.shape == clean.shape == (20, 1, 128, 88)
    hits = (clean != 0).sum(axis=(1, 2, 3))
    assert np.all((hits >= 50) & (hits <= 150))
    # the signal is in the input unchanged; the noise lies only on empty target pixels
    signal = clean != 0
    np.testing.assert_array_equal(noisy[signal], clean[signal])
    noise = (noisy != 0) & ~signal
    assert noise.sum() > 0
    values = np.concatenate([clean[signal], noisy[noise]])
    assert values.min() >= 0.2 and values.max() <= 1.0


def test_training_fallback_loss_matches_the_kernel():
    torch = pytest.importorskip("torch")
    import acbmse_rs

    training = _load("training")
    rng = np.random.default_rng(0)
    target = np.where(rng.random((4, 1, 16, 11)) < 0.1, rng.random((4, 1, 16, 11)), 0.0)
    pred = rng.random(target.shape)
    value = training._TorchACBLoss()(torch.from_numpy(pred), torch.from_numpy(target))
    assert value.item() == pytest.approx(acbmse_rs.acb_mse(pred, target), rel=1e-12)
