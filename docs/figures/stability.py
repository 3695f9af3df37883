"""Loss stability as the number of hits grows: ACB-MSE stays constant, MSE and MAE do not.

Reproduces the stability figure of the original ACB-MSE work. A target image of
DEEPCLEAN3D size (128 x 88 = 11,264 pixels) is filled with signal two pixels at a time
(in a fixed pseudo-random order); the reconstruction always recovers exactly one pixel
of each pair, i.e. exactly 50% of the signal, and predicts 0 for the other. At every
step ACB-MSE, MSE and MAE of the reconstruction against the target are computed.

Because every missed hit costs the same and ACB-MSE averages the hit class over its own
count, ACB-MSE is the same at every step, while MSE and MAE (averaged over all pixels)
grow in proportion to the number of hits.

Regenerate the figure (needs the ``plot`` extra, i.e. matplotlib)::

    python docs/figures/stability.py

``stability_sweep`` needs only NumPy and acbmse_rs; matplotlib is imported inside
``plot`` so the numbers can be tested without it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import acbmse_rs
import numpy as np

HEIGHT = 128
WIDTH = 88
HIT_VALUE = 0.5
"""Value of every signal pixel (arbitrary units; 0.5 keeps the MSE and MAE curves apart)."""

DEEPCLEAN3D_HITS = (25, 350)
"""Range of signal hits per image in the DEEPCLEAN3D data, shaded in the figure."""


def stability_sweep(
    height: int = HEIGHT, width: int = WIDTH, hit_value: float = HIT_VALUE, seed: int = 0
) -> dict[str, np.ndarray]:
    """Fill a ``height x width`` target two pixels at a time and score a 50% reconstruction.

    Args:
        height: Image height in pixels.
        width: Image width in pixels (``height * width`` must be even).
        hit_value: Value of every signal pixel in the target.
        seed: Seed of the order in which pixels are filled.

    Returns:
        A dict of equally long arrays: ``n_hits`` (2, 4, ..., height * width) and the
        ``acb_mse``, ``mse`` and ``mae`` of the reconstruction at each step (float64).
    """
    n_pixels = height * width
    if n_pixels % 2:
        raise ValueError(f"height * width must be even, got {height} x {width} = {n_pixels}")
    order = np.random.default_rng(seed).permutation(n_pixels)
    target = np.zeros(n_pixels, dtype=np.float32)
    pred = np.zeros(n_pixels, dtype=np.float32)
    n_steps = n_pixels // 2
    out = {name: np.empty(n_steps) for name in ("acb_mse", "mse", "mae")}
    out["n_hits"] = np.arange(2, n_pixels + 1, 2)
    for step in range(n_steps):
        recovered, missed = order[2 * step], order[2 * step + 1]
        target[recovered] = target[missed] = hit_value
        pred[recovered] = hit_value  # the missed pixel stays 0 in the reconstruction
        t2, p2 = target.reshape(height, width), pred.reshape(height, width)
        out["acb_mse"][step] = acbmse_rs.acb_mse(p2, t2)
        diff = p2.astype(np.float64) - t2
        out["mse"][step] = np.mean(diff * diff)
        out["mae"][step] = np.mean(np.abs(diff))
    return out


def plot(sweep: dict[str, np.ndarray], path: Path) -> None:
    """Draw the three losses against the number of hits (log-log) and save a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = sweep["n_hits"]
    fig, ax = plt.subplots(figsize=(7.5, 4.2), dpi=110)
    ax.axvspan(*DEEPCLEAN3D_HITS, color="0.9", label="DEEPCLEAN3D hits per image (25-350)")
    ax.plot(n, sweep["acb_mse"], lw=2.5, color="C0", label="ACB-MSE")
    ax.plot(n, sweep["mse"], lw=2, color="C3", label="MSE")
    ax.plot(n, sweep["mae"], lw=2, color="C1", ls="--", label="MAE")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(n[0], n[-1])
    ax.set_xlabel(f"number of signal hits in a {HEIGHT}x{WIDTH} target (pixels)")
    ax.set_ylabel(f"loss per image (hit value {HIT_VALUE}; arbitrary units)")
    ax.set_title("Reconstruction recovers exactly 50% of the hits at every step")
    ax.grid(True, which="major", alpha=0.4)
    ax.legend(loc="lower right", framealpha=0.95)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    """Compute the sweep and write the figure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).with_name("stability.png"), help="PNG path"
    )
    args = parser.parse_args()
    sweep = stability_sweep()
    plot(sweep, args.out)
    acb = sweep["acb_mse"]
    print(
        f"ACB-MSE: {acb.min():.6g}..{acb.max():.6g}; "
        f"MSE: {sweep['mse'][0]:.3g}..{sweep['mse'][-1]:.3g}; "
        f"MAE: {sweep['mae'][0]:.3g}..{sweep['mae'][-1]:.3g}; wrote {args.out}"
    )


if __name__ == "__main__":
    main()
