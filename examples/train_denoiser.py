"""Train a small convolutional denoiser on sparse detector-like images with ``ACBLoss``.

Synthetic data in the spirit of DEEPCLEAN3D: 128 x 88 images in which a few straight
particle tracks light up 200-250 pixels (values 0.3-1), plus about 200 isolated noise
pixels of the same value range scattered over the image; the input has also lost 20% of
the track pixels (dead channels). The network sees the noisy image and must return the
clean one. With 99% of the pixels empty, plain MSE is minimised early on by predicting
"all empty"; ACB-MSE weighs the hit pixels as much as the empty ones, so the network
learns to keep, and fill in, the tracks.

After every epoch the script reports, on a fixed validation set (a pixel counts as a
predicted hit when the output exceeds 0.15, half the smallest hit value):

* hit recall: the fraction of the clean image's hit pixels that are predicted as hits
  (and, of those, the share of the ones missing from the input that were restored);
* noise kept: the fraction of the noise pixels still predicted as hits;
* false-positive rate: predicted hits among all of the clean image's empty pixels.

Run it (about a minute or two on 2 CPU cores)::

    python examples/train_denoiser.py
    python examples/train_denoiser.py --criterion original   # acb_mse.ACBLoss, for comparison
    python examples/train_denoiser.py --criterion mse        # plain MSE, for comparison
    python examples/train_denoiser.py --compile              # torch.compile(fullgraph=True)

Swapping in acbmse-rs for the original package is a one-line change::

    # from acb_mse import ACBLoss
    from acbmse_rs.torch import ACBLoss
"""

from __future__ import annotations

import argparse
import math
import time

import torch
from acbmse_rs.torch import ACBLoss
from torch import nn

HEIGHT, WIDTH = 128, 88
MIN_HIT = 0.3
THRESHOLD = MIN_HIT / 2


def make_images(
    n: int, hits: int, noise: int, drop: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(noisy, clean)`` images of shape ``(n, 1, 128, 88)``, float32.

    Each clean image holds straight tracks (each about ``hits / 3`` pixels long, clipped at
    the border), added until they light up at least ``hits`` pixels. The noisy image loses
    a fraction ``drop`` of the track pixels (dead channels) and gains about ``noise``
    isolated pixels at random positions.
    """
    g = torch.Generator().manual_seed(seed)
    clean = torch.zeros(n, HEIGHT, WIDTH)
    noisy = torch.zeros(n, HEIGHT, WIDTH)
    for k in range(n):
        while int(torch.count_nonzero(clean[k])) < hits:
            y0 = float(torch.rand(1, generator=g)) * HEIGHT
            x0 = float(torch.rand(1, generator=g)) * WIDTH
            angle = float(torch.rand(1, generator=g)) * 2 * math.pi
            s = torch.arange(0, hits / 3, 0.5)
            ys = (y0 + s * math.sin(angle)).round().long()
            xs = (x0 + s * math.cos(angle)).round().long()
            inside = (ys >= 0) & (ys < HEIGHT) & (xs >= 0) & (xs < WIDTH)
            ys, xs = ys[inside], xs[inside]
            clean[k, ys, xs] = MIN_HIT + (1 - MIN_HIT) * torch.rand(len(ys), generator=g)
        n_noise = int(torch.randint(noise // 2, 3 * noise // 2 + 1, (1,), generator=g))
        ny = torch.randint(0, HEIGHT, (n_noise,), generator=g)
        nx = torch.randint(0, WIDTH, (n_noise,), generator=g)
        noisy[k] = clean[k] * (torch.rand(HEIGHT, WIDTH, generator=g) >= drop)
        noisy[k, ny, nx] = MIN_HIT + (1 - MIN_HIT) * torch.rand(n_noise, generator=g)
    return noisy.unsqueeze(1), clean.unsqueeze(1)


class Denoiser(nn.Module):
    """Fully convolutional: dilated 3x3 convolutions see about 31 x 31 pixels."""

    def __init__(self, channels: int = 12) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(1, channels, 3, padding=1), nn.ReLU()]
        for dilation in (2, 4, 8):
            layers += [nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation)]
            layers += [nn.ReLU()]
        layers += [nn.Conv2d(channels, 1, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@torch.no_grad()
def evaluate(model: nn.Module, noisy: torch.Tensor, clean: torch.Tensor) -> dict[str, float]:
    """Hit recall, dropped hits restored, noise pixels kept and false-positive rate."""
    predicted = model(noisy) > THRESHOLD
    hit = clean != 0
    dropped = hit & (noisy == 0)
    noise = (noisy != 0) & ~hit
    empty = ~hit
    return {
        "recall": float((predicted & hit).sum() / hit.sum()),
        "restored": float((predicted & dropped).sum() / dropped.sum().clamp(min=1)),
        "noise_kept": float((predicted & noise).sum() / noise.sum().clamp(min=1)),
        "fp_rate": float((predicted & empty).sum() / empty.sum()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--criterion", choices=("acb", "original", "mse"), default="acb")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--n-train", type=int, default=256)
    parser.add_argument("--n-val", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--hits", type=int, default=200, help="signal pixels per image")
    parser.add_argument("--noise", type=int, default=200, help="noise pixels per image")
    parser.add_argument("--drop", type=float, default=0.2, help="track pixels lost in the input")
    parser.add_argument("--lr", type=float, default=4e-3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--compile", action="store_true", help="torch.compile the step")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    train_noisy, train_clean = make_images(
        args.n_train, args.hits, args.noise, args.drop, args.seed
    )
    val_noisy, val_clean = make_images(args.n_val, args.hits, args.noise, args.drop, args.seed + 1)
    hit_share = float((train_clean != 0).float().mean())
    print(f"{args.n_train} training images 1x{HEIGHT}x{WIDTH}, {hit_share:.2%} hit pixels")

    criterion: nn.Module
    if args.criterion == "acb":
        criterion = ACBLoss(zero_weighting=1.0, nonzero_weighting=1.0)
    elif args.criterion == "original":
        from acb_mse import ACBLoss as OriginalACBLoss

        criterion = OriginalACBLoss(zero_weighting=1, nonzero_weighting=1)
    else:
        criterion = nn.MSELoss()
    model = Denoiser()
    optimiser = torch.optim.Adam(model.parameters(), lr=args.lr)

    def loss_of(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return criterion(model(x), y)

    step = torch.compile(loss_of, fullgraph=True) if args.compile else loss_of

    print(f"criterion: {criterion.__class__.__module__}.{criterion.__class__.__name__}")
    start = time.perf_counter()
    loss_time = 0.0
    for epoch in range(1, args.epochs + 1):
        order = torch.randperm(args.n_train)
        total = 0.0
        for i in range(0, args.n_train, args.batch_size):
            idx = order[i : i + args.batch_size]
            optimiser.zero_grad(set_to_none=True)
            if args.compile:
                loss = step(train_noisy[idx], train_clean[idx])
                loss.backward()
            else:  # eager: also time the criterion's own forward+backward
                out = model(train_noisy[idx])
                leaf = out.detach().requires_grad_()
                t0 = time.perf_counter()
                loss = criterion(leaf, train_clean[idx])
                loss.backward()
                loss_time += time.perf_counter() - t0
                out.backward(leaf.grad)
            optimiser.step()
            total += loss.item() * len(idx)
        scores = evaluate(model, val_noisy, val_clean)
        print(
            f"epoch {epoch:2d}  loss {total / args.n_train:.5f}  "
            f"hit recall {scores['recall']:.3f} (dropped restored {scores['restored']:.3f})  "
            f"noise kept {scores['noise_kept']:.3f}  "
            f"false-positive rate {scores['fp_rate']:.4f}  "
            f"({time.perf_counter() - start:.0f} s)"
        )
    elapsed = time.perf_counter() - start
    if not args.compile:
        print(f"criterion forward+backward: {loss_time:.2f} s of the {elapsed:.0f} s")


if __name__ == "__main__":
    main()
