"""The ``acbmse`` command: score datasets of predictions against targets.

``acbmse score PRED TARGET`` streams both inputs in chunks along axis 0 through a
:class:`~acbmse_rs.Scorer` and prints a summary; ``acbmse demo`` generates a
synthetic DEEPCLEAN3D-like dataset in a temporary folder and scores it through the
same code. Bad input prints one line on stderr and exits with status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any, TextIO

import numpy as np

from . import __version__, _core
from .readers import (
    ArraySource,
    InputError,
    check_pair,
    default_chunk_samples,
    iter_chunks,
    open_source,
)
from .scorer import Scorer, ScoreResult

__all__ = ["main", "make_demo_data"]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130

_PER_SAMPLE_SUFFIXES = (".csv", ".npy")


# ---------------------------------------------------------------------------
# Progress bar


class Progress:
    """A one-line progress bar (samples/s and ETA) redrawn on a terminal stream.

    Drawn only when ``enabled`` (the CLI enables it when stderr is a terminal and
    ``--quiet`` is not given); redrawn at most every ``interval`` seconds.
    """

    def __init__(
        self, total: int, stream: TextIO, enabled: bool, interval: float = 0.1, width: int = 24
    ) -> None:
        self.total = total
        self.stream = stream
        self.enabled = enabled
        self.interval = interval
        self.width = width
        self.done = 0
        self._start = time.perf_counter()
        self._last = 0.0
        self._drawn = False

    def update(self, n: int) -> None:
        """Records ``n`` more samples done and redraws if it is time."""
        self.done += n
        if not self.enabled:
            return
        now = time.perf_counter()
        if now - self._last >= self.interval or self.done >= self.total:
            self._last = now
            self._draw(now - self._start)

    def line(self, elapsed: float) -> str:
        """The bar's text after ``elapsed`` seconds."""
        frac = self.done / self.total if self.total else 1.0
        filled = int(round(frac * self.width))
        rate = self.done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.done) / rate if rate > 0 else float("nan")
        bar = "#" * filled + "-" * (self.width - filled)
        return (
            f"{frac:6.1%} [{bar}] {self.done:,}/{self.total:,} samples"
            f"  {rate:,.0f} samples/s  ETA {_duration(eta)}"
        )

    def _draw(self, elapsed: float) -> None:
        self.stream.write("\r" + self.line(elapsed) + "\x1b[K")
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        """Erases the bar."""
        if self._drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._drawn = False


def _duration(seconds: float) -> str:
    if not np.isfinite(seconds):
        return "--:--"
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


# ---------------------------------------------------------------------------
# Atomic output


def write_atomic(path: str, write: Any) -> None:
    """Writes a file atomically: ``write(fileobj)`` fills a temporary file in the
    same directory, which is then renamed over ``path``. On any error (or an
    interrupt) the temporary file is removed and ``path`` is left untouched."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(
        prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory
    )
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _write_per_sample(path: str, losses: np.ndarray[Any, Any]) -> None:
    if path.lower().endswith(".npy"):
        write_atomic(path, lambda f: np.save(f, losses, allow_pickle=False))
        return

    def write_csv(f: Any) -> None:
        f.write(b"index,loss\n")
        step = 1 << 16
        for lo in range(0, len(losses), step):
            block = losses[lo : lo + step].tolist()
            f.write("".join(f"{lo + i},{v!r}\n" for i, v in enumerate(block)).encode("ascii"))

    write_atomic(path, write_csv)


def _check_output_path(path: str, inputs: Sequence[ArraySource], specs: Sequence[str]) -> None:
    if not path.lower().endswith(_PER_SAMPLE_SUFFIXES):
        raise InputError(
            f"--per-sample {path}: unknown output format; use a .csv or .npy file name"
        )
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise InputError(f"--per-sample {path}: directory {directory} does not exist")
    if os.path.isdir(path):
        raise InputError(f"--per-sample {path}: is a directory")
    if os.path.exists(path):
        for spec in specs:
            candidate = spec.split(":", 1)[0] if not os.path.exists(spec) else spec
            if os.path.exists(candidate) and os.path.samefile(candidate, path):
                raise InputError(f"--per-sample {path}: is an input file; refusing to overwrite it")
        for src in inputs:
            names = getattr(src, "names", None)
            if names is not None:
                for name in names:
                    if os.path.samefile(os.path.join(src.label, name), path):
                        raise InputError(
                            f"--per-sample {path}: is an input file; refusing to overwrite it"
                        )


# ---------------------------------------------------------------------------
# Scoring


def score_files(
    pred_spec: str,
    target_spec: str,
    *,
    zero_weighting: float = 1.0,
    nonzero_weighting: float = 1.0,
    chunk_size: int | None = None,
    progress_stream: TextIO | None = None,
    per_sample_path: str | None = None,
) -> tuple[ScoreResult, list[str]]:
    """Scores PRED against TARGET as ``acbmse score`` does.

    Args:
        pred_spec: Predictions input (``.npy``, ``file.npz[:key]``, ``file.h5[:dataset]``
            or a directory of ``.npy`` files).
        target_spec: Targets input, same forms.
        zero_weighting: Weight of the zero class.
        nonzero_weighting: Weight of the nonzero class.
        chunk_size: Samples per chunk (None: about 32 MiB of each input per chunk).
        progress_stream: Where to draw a progress bar, or None for none.
        per_sample_path: If given, the per-sample losses are written there
            atomically (``.csv`` with ``index,loss`` or ``.npy``).

    Returns:
        The result and, for each of the worst 100 samples, where it lives
        (``file.npy[row]`` for directories, else empty strings).

    Raises:
        InputError: For any problem with the inputs or options.
    """
    try:
        _core.validate_weights(zero_weighting, nonzero_weighting)
    except ValueError as e:
        raise InputError(str(e)) from None
    if chunk_size is not None and chunk_size < 1:
        raise InputError(f"--chunk-size must be at least 1, got {chunk_size}")
    scorer = Scorer(zero_weighting, nonzero_weighting)
    with open_source(pred_spec) as pred, open_source(target_spec) as target:
        check_pair(pred, target)
        if per_sample_path is not None:
            _check_output_path(per_sample_path, (pred, target), (pred_spec, target_spec))
        chunk = chunk_size or default_chunk_samples(pred, target)
        bar = Progress(
            pred.n_samples, progress_stream or sys.stderr, enabled=progress_stream is not None
        )
        try:
            for _start, p, t in iter_chunks(pred, target, chunk):
                scorer.update(p, t)
                bar.update(len(p))
                del p, t
        finally:
            bar.close()
        result = scorer.compute()
        labels = [pred.locate(i) or target.locate(i) for i, _ in result.worst(100)]
    if per_sample_path is not None:
        _write_per_sample(per_sample_path, result.per_sample)
    return result, labels


def _summary_json(
    result: ScoreResult, labels: list[str], args: argparse.Namespace, elapsed: float
) -> str:
    summary = result.to_dict(top=args.top)
    for entry, where in zip(summary["worst"], labels):
        if where:
            entry["where"] = where
    summary["pred"] = args.pred
    summary["target"] = args.target
    summary["per_sample_file"] = args.per_sample
    summary["elapsed_s"] = round(elapsed, 6)
    return json.dumps(summary, indent=2, allow_nan=False)


def _run_score(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    if args.top < 0:
        raise InputError(f"--top must be at least 0, got {args.top}")
    if args.threads is not None:
        if args.threads < 1:
            raise InputError(f"--threads must be at least 1, got {args.threads}")
        _core.set_num_threads(args.threads)
    show_bar = not args.quiet and stderr.isatty()
    t0 = time.perf_counter()
    result, labels = score_files(
        args.pred,
        args.target,
        zero_weighting=args.zero_weighting,
        nonzero_weighting=args.nonzero_weighting,
        chunk_size=args.chunk_size,
        progress_stream=stderr if show_bar else None,
        per_sample_path=args.per_sample,
    )
    elapsed = time.perf_counter() - t0
    if args.json:
        stdout.write(_summary_json(result, labels, args, elapsed) + "\n")
    elif args.quiet:
        stdout.write(f"{result.loss!r}\n")
    else:
        top = min(args.top, result.n_samples)
        shown = labels[:top] if any(labels[:top]) else None
        stdout.write(f"acbmse score {args.pred} {args.target}\n\n")
        stdout.write(result.format_table(top=args.top, labels=shown) + "\n")
        rate = result.n_samples / elapsed if elapsed > 0 else float("inf")
        stdout.write(f"\nscored {result.n_samples:,} samples in {elapsed:.2f} s ({rate:,.0f}/s)\n")
        if args.per_sample:
            stdout.write(f"per-sample losses written to {args.per_sample}\n")
    stdout.flush()
    return EXIT_OK


# ---------------------------------------------------------------------------
# Demo data


def make_demo_data(
    directory: str,
    n_samples: int = 2000,
    shape: tuple[int, int] = (128, 88),
    hits: int = 200,
    seed: int = 0,
) -> tuple[str, str]:
    """Writes a synthetic DEEPCLEAN3D-like dataset as two float32 ``.npy`` files.

    Each target image has about ``hits`` nonzero pixels (values in [0.2, 1]) among
    ``shape`` pixels. Each reconstruction recovers a fraction of the hits (its own
    quality, drawn per image, mean 0.8) with a little error, adds a few false hits
    and low-level noise everywhere, so some images score much worse than others.

    Returns:
        The paths ``(pred.npy, target.npy)``.
    """
    rng = np.random.default_rng(seed)
    n_pix = shape[0] * shape[1]
    pred_path = os.path.join(directory, "pred.npy")
    target_path = os.path.join(directory, "target.npy")
    pred = np.lib.format.open_memmap(pred_path, "w+", np.float32, (n_samples, *shape))
    target = np.lib.format.open_memmap(target_path, "w+", np.float32, (n_samples, *shape))
    step = 250
    for lo in range(0, n_samples, step):
        b = min(step, n_samples - lo)
        hit = rng.random((b, n_pix)) < hits / n_pix
        t = np.where(hit, rng.uniform(0.2, 1.0, (b, n_pix)), 0.0)
        quality = rng.beta(8.0, 2.0, (b, 1))
        found = hit & (rng.random((b, n_pix)) < quality)
        p = np.where(found, t + rng.normal(0.0, 0.05, (b, n_pix)), 0.0)
        false_hits = rng.random((b, n_pix)) < rng.uniform(0.0, 40.0, (b, 1)) / n_pix
        p += np.where(false_hits, rng.uniform(0.0, 0.5, (b, n_pix)), 0.0)
        p += rng.normal(0.0, 0.01, (b, n_pix))
        target[lo : lo + b] = t.reshape(b, *shape)
        pred[lo : lo + b] = p.reshape(b, *shape)
    pred.flush()
    target.flush()
    del pred, target
    return pred_path, target_path


def _run_demo(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    if args.samples < 1:
        raise InputError(f"--samples must be at least 1, got {args.samples}")
    with tempfile.TemporaryDirectory(prefix="acbmse-demo-") as tmp:
        chatty = not (args.quiet or args.json)
        if chatty:
            stdout.write(
                f"generating a synthetic DEEPCLEAN3D-like dataset: {args.samples:,} images of "
                f"128x88 = 11,264 pixels, about 200 hits each, in {tmp}\n"
            )
            stdout.flush()
        args.pred, args.target = make_demo_data(tmp, n_samples=args.samples, seed=args.seed)
        return _run_score(args, stdout, stderr)


# ---------------------------------------------------------------------------
# Command line


def _add_scoring_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-A",
        "--zero-weighting",
        type=float,
        default=1.0,
        metavar="A",
        help="weight of the zero-target class (default 1)",
    )
    parser.add_argument(
        "-B",
        "--nonzero-weighting",
        type=float,
        default=1.0,
        metavar="B",
        help="weight of the nonzero-target class (default 1)",
    )
    parser.add_argument(
        "--per-sample",
        metavar="FILE",
        help="write each sample's ACB-MSE to FILE: .csv (index,loss) or .npy (float64)",
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    parser.add_argument(
        "--chunk-size",
        type=int,
        metavar="N",
        help="samples per chunk (default: about 32 MiB of each input); peak memory grows with it",
    )
    parser.add_argument(
        "--threads", type=int, metavar="N", help="kernel threads (default: all CPUs)"
    )
    parser.add_argument(
        "--top", type=int, default=5, metavar="K", help="how many worst samples to list (default 5)"
    )
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no progress bar and no table: print only the global ACB-MSE (or the JSON)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``acbmse``."""
    parser = argparse.ArgumentParser(
        prog="acbmse",
        description="Score predictions against targets with ACB-MSE "
        "(Automatic Class-Balanced Mean Squared Error), streaming from disk.",
    )
    parser.add_argument("--version", action="version", version=f"acbmse-rs {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    score = sub.add_parser(
        "score",
        help="score PRED against TARGET",
        description="Score PRED against TARGET along axis 0 (samples). Each may be a .npy "
        "file (memory-mapped), FILE.npz[:KEY], FILE.h5[:DATASET] (needs h5py) or a "
        "directory of .npy files (paired by file name, in sorted order).",
    )
    score.add_argument("pred", metavar="PRED", help="predictions")
    score.add_argument("target", metavar="TARGET", help="targets")
    _add_scoring_options(score)
    demo = sub.add_parser(
        "demo",
        help="generate a synthetic DEEPCLEAN3D-like dataset and score it",
        description="Generate a synthetic dataset like DEEPCLEAN3D's (128x88 images, about "
        "200 hits each, imperfect reconstructions) in a temporary folder and score it "
        "exactly as 'acbmse score' would.",
    )
    demo.add_argument(
        "--samples", type=int, default=2000, metavar="N", help="number of images (default 2000)"
    )
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    _add_scoring_options(demo)
    return parser


def main(
    argv: Sequence[str] | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Runs ``acbmse`` and returns its exit status.

    0 on success, 2 for bad input or usage (one line on stderr, no traceback),
    1 for an I/O failure while writing, 130 when interrupted.
    """
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return int(e.code) if isinstance(e.code, int) else EXIT_BAD_INPUT
    try:
        if args.command == "demo":
            return _run_demo(args, out, err)
        return _run_score(args, out, err)
    except InputError as e:
        err.write(f"acbmse: error: {e}\n")
        return EXIT_BAD_INPUT
    except OSError as e:
        err.write(f"acbmse: error: {e}\n")
        return EXIT_FAILURE
    except KeyboardInterrupt:
        err.write("acbmse: interrupted\n")
        return EXIT_INTERRUPTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
