"""Speed figure: time per call against input size for ACB-MSE implementations.

The timings come from the side-by-side sweep in ``benchmarks/bench_sweep.py`` (all
implementations in one run on one machine). Regenerate the sweep and the figure::

    python docs/figures/speed.py

(a few minutes; on a shared machine serialise it with other timing runs, e.g. under
``flock``). ``--from-json`` redraws ``speed.png`` from the existing ``speed.json``
without timing anything.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SWEEP = HERE.parent.parent / "benchmarks" / "bench_sweep.py"

STYLE = {
    "acbmse_rs.acb_mse": {"color": "C0", "marker": "o", "lw": 2.5},
    "acbmse_rs.acb_mse_grad": {"color": "C0", "marker": "s", "lw": 1.8, "ls": "--"},
    "acb_mse.ACBLoss (original, torch CPU)": {"color": "C3", "marker": "^", "lw": 1.8},
    "scikit-learn balanced MSE": {"color": "C1", "marker": "v", "lw": 1.8},
    "plain NumPy": {"color": "C2", "marker": "D", "lw": 1.8},
    "numpy.dot roofline": {"color": "0.35", "marker": "", "lw": 1.5, "ls": ":"},
}
REFERENCE = "acbmse_rs.acb_mse"


def run_sweep(out: Path) -> None:
    """Run ``benchmarks/bench_sweep.py`` with its defaults, writing ``out``."""
    spec = importlib.util.spec_from_file_location("bench_sweep", SWEEP)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    data = module.sweep(module.DEFAULT_SIZES, 0.5, 3, 200, 6.0)
    out.write_text(json.dumps(data, indent=1) + "\n")


def headline(data: dict[str, Any], n: int) -> dict[str, float]:
    """Time of each implementation divided by ``acbmse_rs.acb_mse``'s, at size ``n``."""
    ref = data["results"][REFERENCE][str(n)]["best_s"]
    return {
        name: timings[str(n)]["best_s"] / ref
        for name, timings in data["results"].items()
        if str(n) in timings
    }


def plot(data: dict[str, Any], path: Path) -> None:
    """Log-log time per call (left) and time relative to ``acbmse_rs.acb_mse`` (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_t, ax_r) = plt.subplots(1, 2, figsize=(11, 4.8), dpi=100)
    ref = data["results"][REFERENCE]
    for name, timings in data["results"].items():
        sizes = sorted(int(k) for k in timings)
        label = name
        if data["skipped"].get(name):
            label += " (skipped at " + ", ".join(f"{n:.0e}" for n in data["skipped"][name]) + ")"
        style = STYLE.get(name, {})
        ax_t.plot(sizes, [timings[str(n)]["best_s"] for n in sizes], label=label, **style)
        ax_r.plot(
            sizes, [timings[str(n)]["best_s"] / ref[str(n)]["best_s"] for n in sizes], **style
        )
    ax_t.set_ylabel("time per call (seconds, best of >= 3)")
    ax_r.set_ylabel("time relative to acbmse_rs.acb_mse (x)")
    for ax in (ax_t, ax_r):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("input size (float32 elements in pred and in target)")
        ax.grid(True, which="major", alpha=0.4)
    ax_r.axhline(1, color="C0", lw=0.8)
    fig.legend(loc="lower center", ncol=3, fontsize=9, frameon=False)
    m = data["machine"]
    fig.suptitle(
        f"ACB-MSE speed on {m['cpu_count']} CPU cores ({m['processor']}), "
        f"~1.8% nonzero targets; all implementations timed in one run",
        fontsize=11,
    )
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    """Run the sweep (unless ``--from-json``), draw the figure, print headline ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=HERE / "speed.json")
    parser.add_argument("--out", type=Path, default=HERE / "speed.png")
    parser.add_argument("--from-json", action="store_true", help="only redraw from --json")
    args = parser.parse_args()
    if not args.from_json:
        run_sweep(args.json)
    data = json.loads(args.json.read_text())
    plot(data, args.out)
    for n in (10**4, 10**6, 10**8):
        if str(n) in data["results"][REFERENCE]:
            ratios = ", ".join(f"{k}: {v:.3g}x" for k, v in headline(data, n).items())
            print(f"n={n:.0e}: {ratios}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
