"""Tests of the ``acbmse`` command line (in process, plus a few real subprocesses)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import acbmse_rs
import numpy as np
import pytest
from acbmse_rs.cli import Progress, main, write_atomic

N, SHAPE = 41, (8, 9)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One dataset written in every input format."""
    root = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(1)
    hit = rng.random((N, *SHAPE)) < 0.1
    target = np.where(hit, rng.uniform(0.2, 1.0, (N, *SHAPE)), 0.0).astype(np.float32)
    pred = (target + rng.normal(0, 0.1, target.shape)).astype(np.float32)
    np.save(root / "pred.npy", pred)
    np.save(root / "target.npy", target)
    np.savez(root / "pair.npz", pred=pred, target=target)
    np.savez_compressed(root / "pred_only.npz", pred)
    try:
        import h5py

        with h5py.File(root / "pair.h5", "w") as f:
            f.create_dataset("out/pred", data=pred)
            f.create_dataset("truth/target", data=target)
    except ImportError:  # pragma: no cover - h5py is a test dependency
        pass
    for name, arr in (("pred_dir", pred), ("target_dir", target)):
        (root / name).mkdir()
        for k, (lo, hi) in enumerate(((0, 10), (10, 11), (11, N))):
            np.save(root / name / f"part{k}.npy", arr[lo:hi])
    return {"root": root, "pred": pred, "target": target}


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def _json(*argv: str) -> dict[str, Any]:
    code, out, err = run(*argv, "--json")
    assert code == 0, err
    result: dict[str, Any] = json.loads(out)
    return result


@pytest.mark.parametrize(
    ("pred", "target"),
    [
        ("pred.npy", "target.npy"),
        ("pair.npz:pred", "pair.npz:target"),
        ("pred_only.npz", "target.npy"),
        ("pair.h5:out/pred", "pair.h5:truth/target"),
        ("pred_dir", "target_dir"),
    ],
)
def test_every_format_gives_the_in_memory_result(
    data: dict[str, Any], pred: str, target: str
) -> None:
    root = data["root"]
    if pred.startswith("pair.h5"):
        pytest.importorskip("h5py")
    summary = _json("score", str(root / pred), str(root / target), "--chunk-size", "7")
    p, t = data["pred"], data["target"]
    assert summary["acb_mse"] == pytest.approx(acbmse_rs.acb_mse(p, t), rel=1e-12)
    stats = acbmse_rs.class_stats(p, t)
    assert summary["n_zero"] == stats.n_zero and summary["n_nonzero"] == stats.n_nonzero
    assert summary["mse_zero"] == pytest.approx(stats.mse_zero, rel=1e-12)
    assert summary["n_samples"] == N
    worst = np.argsort(-acbmse_rs.acb_mse_per_sample(p, t), kind="stable")[:5]
    assert [w["index"] for w in summary["worst"]] == worst.tolist()
    if pred == "pred_dir":
        assert summary["worst"][0]["where"].startswith("part")


@pytest.mark.parametrize("chunk", ["1", "4", "41", "1000"])
@pytest.mark.parametrize("suffix", [".csv", ".npy"])
def test_per_sample_output(data: dict[str, Any], tmp_path: Path, chunk: str, suffix: str) -> None:
    root = data["root"]
    out = tmp_path / f"losses{suffix}"
    code, _, err = run(
        "score",
        str(root / "pred.npy"),
        str(root / "target.npy"),
        "--per-sample",
        str(out),
        "--chunk-size",
        chunk,
        "-A",
        "0.5",
        "-B",
        "2",
        "--quiet",
    )
    assert code == 0, err
    expected = acbmse_rs.acb_mse_per_sample(data["pred"], data["target"], 0.5, 2.0)
    if suffix == ".npy":
        got = np.load(out)
        assert got.dtype == np.float64
        np.testing.assert_array_equal(got, expected)
    else:
        lines = out.read_text().splitlines()
        assert lines[0] == "index,loss"
        table = np.loadtxt(out, delimiter=",", skiprows=1)
        np.testing.assert_array_equal(table[:, 0], np.arange(N))
        np.testing.assert_array_equal(table[:, 1], expected)  # repr round-trips exactly
    assert sorted(os.listdir(tmp_path)) == [out.name]  # no temporary file left


def test_summary_table_and_quiet(data: dict[str, Any]) -> None:
    root = data["root"]
    p, t = str(root / "pred.npy"), str(root / "target.npy")
    code, out, err = run("score", p, t, "--top", "3")
    assert code == 0 and err == ""
    loss = acbmse_rs.acb_mse(data["pred"], data["target"])
    for text in ("ACB-MSE", "MSE zero class", "MSE nonzero class", "nonzero fraction"):
        assert text in out
    assert "worst 3 samples" in out and f"{loss:.6g}" in out
    code, out, err = run("score", p, t, "--quiet")
    assert code == 0 and err == ""
    assert float(out) == pytest.approx(loss, rel=1e-12)


def test_progress_bar_only_on_a_terminal(data: dict[str, Any]) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    root = data["root"]
    args = ["score", str(root / "pred.npy"), str(root / "target.npy"), "--chunk-size", "5"]
    err = Tty()
    assert main(args, stdout=io.StringIO(), stderr=err) == 0
    assert "samples/s" in err.getvalue() and "ETA" in err.getvalue()
    err = Tty()
    assert main([*args, "--quiet"], stdout=io.StringIO(), stderr=err) == 0
    assert err.getvalue() == ""
    # A real process whose stderr is a pipe draws nothing.
    proc = subprocess.run(
        [sys.executable, "-m", "acbmse_rs", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0 and proc.stderr == ""
    assert "ACB-MSE" in proc.stdout


def test_progress_line() -> None:
    bar = Progress(200, io.StringIO(), enabled=True)
    bar.done = 50
    line = bar.line(elapsed=2.0)
    assert "25.0%" in line and "50/200" in line and "25 samples/s" in line and "0:06" in line


def test_demo(tmp_path: Path) -> None:
    out = tmp_path / "demo.npy"
    summary = _json("demo", "--samples", "60", "--per-sample", str(out))
    assert summary["n_samples"] == 60
    assert 0.01 < summary["nonzero_fraction"] < 0.03  # about 200 hits in 11,264 pixels
    losses = np.load(out)
    assert losses.shape == (60,)
    assert summary["worst"][0]["loss"] == pytest.approx(losses.max())
    code, text, _ = run("demo", "--samples", "20")
    assert code == 0 and "synthetic" in text and "ACB-MSE" in text


def test_console_script_installed() -> None:
    exe = shutil.which("acbmse")
    if exe is None:
        pytest.skip("acbmse console script not on PATH (package not installed)")
    proc = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and acbmse_rs.__version__ in proc.stdout


def _digest(root: Path) -> dict[str, tuple[str, int]]:
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            out[str(path)] = (
                hashlib.sha256(path.read_bytes()).hexdigest(),
                path.stat().st_mtime_ns,
            )
    return out


def _bad_inputs(root: Path) -> list[tuple[list[str], str]]:
    (root / "bad").mkdir(exist_ok=True)
    b = root / "bad"
    (b / "empty_dir").mkdir(exist_ok=True)
    (b / "text.txt").write_text("not an array")
    (b / "corrupt.npy").write_bytes(b"\x93NUMPY\x01\x00{'descr': garbage")
    full = (root / "pred.npy").read_bytes()
    (b / "trunc.npy").write_bytes(full[: len(full) // 2])
    np.savez_compressed(b / "damaged.npz", np.load(root / "pred.npy"))
    damaged = bytearray((b / "damaged.npz").read_bytes())
    for k in range(len(damaged) // 3, len(damaged) // 2):
        damaged[k] ^= 0x5A
    (b / "damaged.npz").write_bytes(bytes(damaged))
    np.save(b / "strings.npy", np.array([["a", "b"]] * N))
    np.save(b / "short.npy", np.zeros((N - 1, *SHAPE), np.float32))
    np.save(b / "wide.npy", np.zeros((N, 8, 10), np.float32))
    (b / "unreadable.npy").write_bytes(full)
    os.chmod(b / "unreadable.npy", 0)
    p, t = str(root / "pred.npy"), str(root / "target.npy")
    cases = [
        ([str(b / "missing.npy"), t], "no such file"),
        ([p, str(b / "text.txt")], "unknown format"),
        ([str(b / "corrupt.npy"), t], "not a valid .npy"),
        ([str(b / "trunc.npy"), t], "corrupt .npy"),
        ([str(root / "pair.npz") + ":nokey", t], "no array 'nokey'"),
        ([str(root / "pair.npz"), t], "holds 2 arrays"),
        ([str(b / "damaged.npz"), t], "corrupt .npz"),
        ([str(b / "short.npy"), t], "different sample counts"),
        ([str(b / "wide.npy"), t], "different shapes"),
        ([str(b / "strings.npy"), t], "unsupported dtype"),
        ([str(root / "pred_dir"), str(b / "empty_dir")], "no .npy files"),
        ([p, t, "-A", "-1"], "zero_weighting must be"),
        ([p, t, "--chunk-size", "0"], "--chunk-size must be at least 1"),
        ([p, t, "--threads", "0"], "--threads must be at least 1"),
        ([p, t, "--top", "-1"], "--top must be at least 0"),
    ]
    if _has_h5py():
        cases.append(([str(root / "pair.h5") + ":nodata", t], "no dataset 'nodata'"))
    if os.geteuid() != 0:  # root can read anything
        cases.append(([str(b / "unreadable.npy"), t], "cannot open"))
    return cases


def _has_h5py() -> bool:
    try:
        import h5py  # noqa: F401
    except ImportError:  # pragma: no cover
        return False
    return True


def test_bad_input_one_line_exit_2_no_output(data: dict[str, Any], tmp_path: Path) -> None:
    root = data["root"]
    cases = _bad_inputs(root)
    before = _digest(root)
    for argv, needle in cases:
        out_file = tmp_path / "losses.csv"
        code, out, err = run("score", *argv, "--per-sample", str(out_file))
        assert code == 2, (argv, err)
        assert err.startswith("acbmse: error: ") and err.count("\n") == 1, err
        assert needle in err, (needle, err)
        assert "Traceback" not in err and out == ""
        assert not out_file.exists() and os.listdir(tmp_path) == [], argv
    assert _digest(root) == before  # inputs never modified
    os.chmod(root / "bad" / "unreadable.npy", 0o600)


def test_bad_input_in_a_real_process(data: dict[str, Any], tmp_path: Path) -> None:
    root = data["root"]
    out_file = tmp_path / "x.npy"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "acbmse_rs",
            "score",
            str(root / "pred.npy"),
            str(root / "pair.npz:missing"),
            "--per-sample",
            str(out_file),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "no array 'missing'" in proc.stderr
    assert "Traceback" not in proc.stderr and not out_file.exists()


def test_output_option_errors(data: dict[str, Any], tmp_path: Path) -> None:
    root = data["root"]
    p, t = str(root / "pred.npy"), str(root / "target.npy")
    before = _digest(root)
    for target_file, needle in (
        (str(tmp_path / "x.txt"), "use a .csv or .npy"),
        (str(tmp_path / "nodir" / "x.csv"), "does not exist"),
        (p, "refusing to overwrite"),
        (str(root / "pred_dir" / "part0.npy"), "refusing to overwrite"),
    ):
        pred = str(root / "pred_dir") if "pred_dir" in target_file else p
        tgt = str(root / "target_dir") if "pred_dir" in target_file else t
        code, _, err = run("score", pred, tgt, "--per-sample", target_file)
        assert code == 2 and needle in err and err.count("\n") == 1, err
    assert _digest(root) == before


def test_usage_errors_exit_2() -> None:
    code, _, _ = run("score", "only-one-argument")
    assert code == 2
    code, _, _ = run("frobnicate")
    assert code == 2


def test_write_atomic_leaves_nothing_on_failure(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    path.write_text("old contents")

    def fail(f: Any) -> None:
        f.write(b"half a file")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomic(str(path), fail)
    assert path.read_text() == "old contents"
    assert os.listdir(tmp_path) == ["out.csv"]
    write_atomic(str(path), lambda f: f.write(b"new"))
    assert path.read_text() == "new" and os.listdir(tmp_path) == ["out.csv"]
