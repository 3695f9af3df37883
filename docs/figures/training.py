"""Escaping the all-zero minimum: one small denoiser trained with MSE and with ACB-MSE.

A CPU-sized version of the DEEPCLEAN3D experiment. Synthetic sparse detector images of
128 x 88 pixels hold a few straight particle tracks (``--hits`` signal pixels on average,
values 0.2-1, like normalised time-of-flight) plus isolated noise pixels of the same value
range. A small convolutional denoiser (by default an autoencoder with no skip connections,
see ``make_model``) learns to map the noisy image to the clean one. It is trained twice
from the same initial weights, on the same batches in the same order, with the same Adam
optimiser and budget: once with ``torch.nn.MSELoss`` and once with
``acbmse_rs.torch.ACBLoss`` (weights 1 and 1).

After every epoch both networks are scored on a fixed validation set: a pixel counts as
a predicted hit when the output exceeds 0.1 (half the smallest hit value).

* hit recall: predicted hits among the target's signal pixels;
* false-positive rate: predicted hits among the target's empty pixels (noise pixels
  that were kept, and anything the network invents).

Everything is seeded and torch runs on ``--threads`` CPU threads (2 by default).
Regenerate the figure and the per-epoch numbers (a few minutes on 2 cores)::

    python docs/figures/training.py

which writes ``training.png`` and ``training.json`` next to this script. ``--explore``
reruns it at other sparsities and with a denoiser that can copy its input (``EXPLORE``),
writes ``training_explore.json`` and prints the README's table; ``--hits``, ``--arch`` and
``--tag`` run a single other setting.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

HEIGHT, WIDTH = 128, 88
THRESHOLD = 0.1
HERE = Path(__file__).resolve().parent


@dataclass
class Config:
    """Everything that defines one experiment."""

    hits: int = 200
    """Mean number of signal pixels per image (uniform in [hits/2, 3*hits/2])."""
    noise: int = 200
    """Mean number of noise pixels per image (uniform in [noise/2, 3*noise/2])."""
    n_train: int = 512
    n_val: int = 128
    epochs: int = 15
    batch_size: int = 16
    lr: float = 1e-3
    channels: int = 8
    arch: str = "autoencoder"
    """``autoencoder`` (strided encoder-decoder, no skips) or ``local`` (4 same-size convs)."""
    threads: int = 2
    seed: int = 0


def _track_pixels(rng: np.random.Generator, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Rasterise a straight track of about ``length`` pixels from a random start point."""
    y0, x0 = rng.uniform(0, HEIGHT), rng.uniform(0, WIDTH)
    angle = rng.uniform(0, 2 * np.pi)
    s = np.arange(0, length, 0.5)
    ys = np.round(y0 + s * np.sin(angle)).astype(int)
    xs = np.round(x0 + s * np.cos(angle)).astype(int)
    inside = (ys >= 0) & (ys < HEIGHT) & (xs >= 0) & (xs < WIDTH)
    return ys[inside], xs[inside]


def make_images(n: int, hits: int, noise: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Noisy inputs and clean targets, each of shape ``(n, 1, HEIGHT, WIDTH)``, float32."""
    rng = np.random.default_rng(seed)
    clean = np.zeros((n, HEIGHT, WIDTH), dtype=np.float32)
    noisy = np.zeros_like(clean)
    for k in range(n):
        want = rng.integers(max(1, hits // 2), hits + hits // 2 + 1)
        img = clean[k]
        while np.count_nonzero(img) < want:
            ys, xs = _track_pixels(rng, rng.uniform(20, 90))
            if len(ys) == 0:
                continue
            # the "time of flight" varies smoothly along the track
            img[ys, xs] = np.linspace(*rng.uniform(0.2, 1.0, size=2), len(ys))
        extra = np.count_nonzero(img) - want  # trim the last track to the wanted count
        if extra > 0:
            on = np.flatnonzero(img)
            img.flat[rng.choice(on, extra, replace=False)] = 0
        noisy[k] = img
        n_noise = rng.integers(noise // 2, noise + noise // 2 + 1)
        where = rng.choice(HEIGHT * WIDTH, n_noise, replace=False)
        where = where[noisy[k].flat[where] == 0]
        noisy[k].flat[where] = rng.uniform(0.2, 1.0, size=len(where))
    return noisy[:, None], clean[:, None]


def make_model(channels: int, arch: str) -> nn.Module:
    """The denoiser.

    ``autoencoder``: three stride-2 convolutions down to a 16x11 map of ``2 * channels``
    features, three transposed convolutions back, ReLU between, linear output; like
    DEEPCLEAN3D's convolutional autoencoder, every output pixel must be reconstructed
    from the compressed code. ``local``: four same-size 3x3 convolutions (receptive field
    9x9), which can pass each input pixel straight through.
    """
    c = channels
    if arch == "autoencoder":
        return nn.Sequential(
            nn.Conv2d(1, c, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(c, 2 * c, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(2 * c, 2 * c, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.ConvTranspose2d(2 * c, 2 * c, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.ConvTranspose2d(2 * c, c, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.ConvTranspose2d(c, 1, 4, stride=2, padding=1),
        )
    if arch != "local":
        raise ValueError(f"arch must be 'autoencoder' or 'local', got {arch!r}")
    return nn.Sequential(
        nn.Conv2d(1, c, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(c, c, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(c, c, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(c, 1, 3, padding=1),
    )


def acb_criterion() -> tuple[nn.Module, str]:
    """``acbmse_rs.torch.ACBLoss()`` and its name, or a clearly labelled pure-torch fallback."""
    try:
        from acbmse_rs.torch import ACBLoss
    except ImportError:
        fallback = "FALLBACK pure-torch ACB-MSE (acbmse_rs.torch not available)"
        print(f"warning: using the {fallback}", flush=True)
        return _TorchACBLoss(), fallback
    return ACBLoss(1.0, 1.0), "acbmse_rs.torch.ACBLoss(1.0, 1.0)"


class _TorchACBLoss(nn.Module):
    """ACB-MSE in plain torch (used only when ``acbmse_rs.torch`` is not importable)."""

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Sum of the mean squared errors over the target's zero and nonzero elements."""
        sq = (pred - target) ** 2
        zero = target == 0
        n_zero = zero.sum()
        n_hit = zero.numel() - n_zero
        loss_zero = torch.where(zero, sq, 0).sum() / n_zero.clamp(min=1)
        loss_hit = torch.where(zero, 0, sq).sum() / n_hit.clamp(min=1)
        return loss_zero + loss_hit


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """Hit recall, false-positive rate, and mean output at signal/empty pixels."""
    model.eval()
    out = torch.cat([model(x[i : i + 64]) for i in range(0, len(x), 64)])
    model.train()
    hit, pos = y != 0, out > THRESHOLD
    noise = (x != 0) & ~hit
    return {
        "recall": (pos & hit).sum().item() / hit.sum().item(),
        "fpr": (pos & ~hit).sum().item() / (~hit).sum().item(),
        "noise_kept": (pos & noise).sum().item() / max(1, noise.sum().item()),
        "mean_output_at_hits": out[hit].mean().item(),
        "mean_abs_output_at_empty": out[~hit].abs().mean().item(),
        "val_mse": torch.mean((out - y) ** 2).item(),
    }


def train(cfg: Config) -> dict[str, Any]:
    """Train the denoiser with each loss; return per-epoch metrics and sample outputs."""
    torch.set_num_threads(cfg.threads)
    x_train, y_train = map(torch.from_numpy, make_images(cfg.n_train, cfg.hits, cfg.noise, 1))
    x_val, y_val = map(torch.from_numpy, make_images(cfg.n_val, cfg.hits, cfg.noise, 2))
    torch.manual_seed(cfg.seed)
    initial = {k: v.clone() for k, v in make_model(cfg.channels, cfg.arch).state_dict().items()}
    acb, acb_name = acb_criterion()
    runs: dict[str, Any] = {}
    for label, criterion in (("MSE", nn.MSELoss()), ("ACB-MSE", acb)):
        model = make_model(cfg.channels, cfg.arch)
        model.load_state_dict(initial)
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        order = torch.Generator().manual_seed(cfg.seed)
        history = [{"epoch": 0, "train_loss": None, **evaluate(model, x_val, y_val)}]
        t0 = time.perf_counter()
        for epoch in range(1, cfg.epochs + 1):
            perm = torch.randperm(cfg.n_train, generator=order)
            total = 0.0
            for i in range(0, cfg.n_train, cfg.batch_size):
                idx = perm[i : i + cfg.batch_size]
                loss = criterion(model(x_train[idx]), y_train[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += loss.item() * len(idx)
            row = {"epoch": epoch, "train_loss": total / cfg.n_train}
            row.update(evaluate(model, x_val, y_val))
            history.append(row)
            print(
                f"[hits={cfg.hits}] {label:8s} epoch {epoch:2d}  loss {row['train_loss']:.4g}  "
                f"recall {row['recall']:.3f}  FPR {row['fpr']:.4f}  "
                f"noise kept {row['noise_kept']:.3f}",
                flush=True,
            )
        with torch.no_grad():
            sample = model(x_val[:1])[0, 0].numpy()
        runs[label] = {
            "history": history,
            "seconds": time.perf_counter() - t0,
            "sample_output": sample,
        }
    return {
        "config": asdict(cfg),
        "threshold": THRESHOLD,
        "acb_loss": acb_name,
        "torch": torch.__version__,
        "runs": runs,
        "sample_input": x_val[0, 0].numpy(),
        "sample_target": y_val[0, 0].numpy(),
    }


def plot(result: dict[str, Any], path: Path) -> None:
    """Recall and false-positive rate per epoch for both losses, and one example image."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    cfg = result["config"]
    runs = result["runs"]
    colors = {"MSE": "C3", "ACB-MSE": "C0"}
    fig = plt.figure(figsize=(9, 6.6), dpi=110)
    grid = fig.add_gridspec(2, 4, height_ratios=[1.15, 1])
    ax_r = fig.add_subplot(grid[0, :2])
    ax_f = fig.add_subplot(grid[0, 2:])
    for label, run in runs.items():
        epochs = [h["epoch"] for h in run["history"]]
        ax_r.plot(epochs, [100 * h["recall"] for h in run["history"]], "o-", color=colors[label])
        ax_f.plot(
            epochs,
            [100 * h["fpr"] for h in run["history"]],
            "o-",
            color=colors[label],
            label=label,
        )
    ax_r.set_ylabel(f"hit recall (% of signal pixels > {THRESHOLD})")
    ax_f.set_ylabel(f"false-positive rate (% of empty pixels > {THRESHOLD})")
    for ax in (ax_r, ax_f):
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.4)
    ax_r.set_ylim(-3, 103)
    ax_f.set_ylim(-3, 103)
    for ax in (ax_r, ax_f):
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax_f.legend()
    images = [
        ("noisy input", result["sample_input"]),
        ("target", result["sample_target"]),
        ("MSE output", runs["MSE"]["sample_output"]),
        ("ACB-MSE output", runs["ACB-MSE"]["sample_output"]),
    ]
    for k, (title, img) in enumerate(images):
        ax = fig.add_subplot(grid[1, k])
        ax.imshow(np.asarray(img), cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(title, fontsize=10)
        if k == 0:
            ax.set_ylabel("128 x 88 pixels, colour 0-1", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(
        f"{HEIGHT}x{WIDTH} images, ~{cfg['hits']} signal + ~{cfg['noise']} noise pixels; "
        f"same net, init, data, Adam, {cfg['epochs']} epochs",
        fontsize=11,
    )
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


EXPLORE = [
    {"arch": "autoencoder", "hits": 25},
    {"arch": "autoencoder", "hits": 50},
    {"arch": "autoencoder", "hits": 100},
    {"arch": "autoencoder", "hits": 350},
    {"arch": "local", "hits": 200},
    {"arch": "local", "hits": 25},
]
"""Settings of the exploration run (``--explore``): sparsity, and a net that can copy."""


def summary_row(result: dict[str, Any]) -> dict[str, Any]:
    """Final-epoch numbers of both losses, and how long MSE stayed near all-zero."""
    row: dict[str, Any] = {k: result["config"][k] for k in ("arch", "hits", "noise", "epochs")}
    for label, run in result["runs"].items():
        last = run["history"][-1]
        row[f"{label} recall"] = last["recall"]
        row[f"{label} FPR"] = last["fpr"]
        low = [h["epoch"] for h in run["history"][1:] if h["recall"] < 0.05]
        row[f"{label} epochs with recall < 5%"] = len(low)
    return row


def strip(result: dict[str, Any]) -> dict[str, Any]:
    """The JSON-ready part of a result: configuration and per-epoch numbers, no images."""
    out = {k: v for k, v in result.items() if k not in ("sample_input", "sample_target", "runs")}
    out["runs"] = {
        label: {"seconds": run["seconds"], "history": run["history"]}
        for label, run in result["runs"].items()
    }
    out["summary"] = summary_row(result)
    return out


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """A README table of final recall / false-positive rate per setting."""
    lines = [
        "| denoiser | hits/image | MSE recall | MSE FPR | MSE epochs < 5% recall "
        "| ACB-MSE recall | ACB-MSE FPR |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['arch']} | {r['hits']} | {100 * r['MSE recall']:.1f}% "
            f"| {100 * r['MSE FPR']:.2f}% | {r['MSE epochs with recall < 5%']} of {r['epochs']} "
            f"| {100 * r['ACB-MSE recall']:.1f}% | {100 * r['ACB-MSE FPR']:.2f}% |"
        )
    return "\n".join(lines)


def main() -> None:
    """Run both trainings, write the JSON of per-epoch numbers and the figure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    defaults = Config()
    for name, value in asdict(defaults).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    parser.add_argument("--tag", default="", help="suffix of the output names, e.g. _hits50")
    parser.add_argument("--no-plot", action="store_true", help="write the JSON only")
    parser.add_argument(
        "--explore",
        action="store_true",
        help="run the EXPLORE settings instead and write training_explore.json",
    )
    args = vars(parser.parse_args())
    tag, no_plot, explore = args.pop("tag"), args.pop("no_plot"), args.pop("explore")
    if explore:
        results = [strip(train(Config(**{**args, **setting}))) for setting in EXPLORE]
        path = HERE / f"training_explore{tag}.json"
        path.write_text(json.dumps(results, indent=1) + "\n")
        main_json = HERE / "training.json"
        rows = [json.loads(main_json.read_text())["summary"]] if main_json.exists() else []
        print(markdown_table(rows + [r["summary"] for r in results]))
        print(f"wrote {path}")
        return
    result = train(Config(**args))
    path = HERE / f"training{tag}.json"
    path.write_text(json.dumps(strip(result), indent=1) + "\n")
    if not no_plot:
        plot(result, HERE / f"training{tag}.png")
    print(markdown_table([summary_row(result)]))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
