"""Tests of the chunked readers: .npy (memory-mapped), .npz, HDF5 and directories."""

from __future__ import annotations

import mmap
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from acbmse_rs.readers import (
    ArraySource,
    DirectorySource,
    InputError,
    NpySource,
    check_pair,
    default_chunk_samples,
    iter_chunks,
    open_source,
)

h5py = pytest.importorskip("h5py")

ARRAY = np.arange(23 * 4 * 3, dtype=np.float32).reshape(23, 4, 3) % 7


def _chunks(src: ArraySource, chunk: int) -> list[np.ndarray[Any, Any]]:
    out = []
    for start, p, _t in iter_chunks(src, src, chunk):
        assert len(p) <= chunk
        out.append((start, np.array(p)))
    starts = [s for s, _ in out]
    assert starts == sorted(starts)
    return [a for _, a in out]


def _assert_reads(src: ArraySource, expected: np.ndarray[Any, Any]) -> None:
    assert src.shape == expected.shape
    assert src.n_samples == expected.shape[0]
    assert src.sample_shape == expected.shape[1:]
    for chunk in (1, 5, 23, 100):  # 5 does not divide 23; 23 does
        np.testing.assert_array_equal(np.concatenate(_chunks(src, chunk)), expected)


def test_npy_is_memory_mapped(tmp_path: Path) -> None:
    path = tmp_path / "a.npy"
    np.save(path, ARRAY)
    with open_source(str(path)) as src:
        assert isinstance(src, NpySource)
        _assert_reads(src, ARRAY)
        view = src.read(3, 9)
        base: Any = view
        while getattr(base, "base", None) is not None and not isinstance(base, mmap.mmap):
            base = base.base
        assert isinstance(base, mmap.mmap)
        assert not view.flags.writeable
        del view, base


@pytest.mark.parametrize("dtype", [np.float64, np.int16, np.bool_, ">f4"])
def test_npy_dtypes_and_fortran_order(tmp_path: Path, dtype: Any) -> None:
    data = np.asfortranarray(ARRAY.astype(dtype))
    path = tmp_path / "f.npy"
    np.save(path, data)
    with open_source(str(path)) as src:
        assert src.dtype == np.dtype(dtype)
        _assert_reads(src, data)


@pytest.mark.parametrize("compressed", [False, True])
def test_npz_entries(tmp_path: Path, compressed: bool) -> None:
    save = np.savez_compressed if compressed else np.savez
    path = tmp_path / "d.npz"
    save(path, pred=ARRAY, other=ARRAY[:, ::-1].copy(), fort=np.asfortranarray(ARRAY))
    with open_source(f"{path}:other") as src:
        _assert_reads(src, ARRAY[:, ::-1])
        # Random access rewinds the stream.
        np.testing.assert_array_equal(src.read(10, 12), ARRAY[10:12, ::-1])
        np.testing.assert_array_equal(src.read(2, 3), ARRAY[2:3, ::-1])
    with open_source(f"{path}:fort") as src:
        _assert_reads(src, ARRAY)
    single = tmp_path / "s.npz"
    save(single, ARRAY)
    with open_source(str(single)) as src:
        _assert_reads(src, ARRAY)


def test_hdf5_datasets(tmp_path: Path) -> None:
    path = tmp_path / "d.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("group/pred", data=ARRAY, chunks=(4, 4, 3))
        f.create_dataset("target", data=ARRAY * 2)
    with open_source(f"{path}:group/pred") as src:
        _assert_reads(src, ARRAY)
    with open_source(f"{path}:/target") as src:
        _assert_reads(src, ARRAY * 2)
    single = tmp_path / "s.hdf5"
    with h5py.File(single, "w") as f:
        f.create_dataset("x/y", data=ARRAY)
    with open_source(str(single)) as src:
        _assert_reads(src, ARRAY)


def test_directory_in_sorted_order(tmp_path: Path) -> None:
    parts = {"b.npy": ARRAY[5:12], "a.npy": ARRAY[:5], "c.npy": ARRAY[12:]}
    for name, arr in parts.items():
        np.save(tmp_path / name, arr)
    (tmp_path / "notes.txt").write_text("ignored")
    with open_source(str(tmp_path)) as src:
        assert isinstance(src, DirectorySource)
        assert src.names == ["a.npy", "b.npy", "c.npy"]
        assert src.segments() == [5, 7, 11]
        _assert_reads(src, ARRAY)
        assert src.locate(0) == "a.npy[0]"
        assert src.locate(6) == "b.npy[1]"
        assert src.locate(22) == "c.npy[10]"


def test_chunks_never_straddle_files(tmp_path: Path) -> None:
    for name, arr in {"a.npy": ARRAY[:5], "b.npy": ARRAY[5:]}.items():
        np.save(tmp_path / name, arr)
    whole = tmp_path.parent / f"{tmp_path.name}-whole.npy"
    np.save(whole, ARRAY)
    with open_source(str(tmp_path)) as d, open_source(str(whole)) as f:
        spans = [(s, len(p)) for s, p, _ in iter_chunks(d, f, 4)]
        assert spans == [(0, 4), (4, 1), (5, 4), (9, 4), (13, 4), (17, 4), (21, 2)]
        got = np.concatenate([np.array(t) for _, _, t in iter_chunks(f, d, 4)])
        np.testing.assert_array_equal(got, ARRAY)


def test_release_keeps_resident_memory_bounded(tmp_path: Path) -> None:
    psutil = pytest.importorskip("psutil")
    path = tmp_path / "big.npy"
    big = np.lib.format.open_memmap(path, "w+", np.float32, (64, 256, 1024))  # 64 MiB
    big[:] = 1.0
    big.flush()
    del big
    proc = psutil.Process()
    with open_source(str(path)) as src:
        before = proc.memory_info().rss
        peak = before
        total = 0.0
        for _, p, _t in iter_chunks(src, src, 2):  # 2 MiB chunks
            total += float(p.sum(dtype=np.float64))
            peak = max(peak, proc.memory_info().rss)
    assert total == 64 * 256 * 1024
    assert peak - before < 24 * 2**20, f"RSS grew by {(peak - before) / 2**20:.0f} MiB"


def test_default_chunk_size(tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", np.zeros((3, 1000), np.float32))
    np.save(tmp_path / "b.npy", np.zeros((3, 1000), np.float64))
    with open_source(str(tmp_path / "a.npy")) as a, open_source(str(tmp_path / "b.npy")) as b:
        assert default_chunk_samples(a, b, chunk_bytes=80_000) == 10
        assert default_chunk_samples(a, b, chunk_bytes=1) == 1


def _error(spec: str) -> str:
    with pytest.raises(InputError) as info:
        open_source(spec).close()
    return str(info.value)


def test_open_errors(tmp_path: Path) -> None:
    assert "no such file" in _error(str(tmp_path / "missing.npy"))
    assert "missing.npz" in _error(str(tmp_path / "missing.npz:key"))
    (tmp_path / "x.txt").write_text("hello world")
    assert "unknown format" in _error(str(tmp_path / "x.txt"))
    (tmp_path / "bad.npy").write_bytes(b"\x93NUMPY\x01\x00garbage")
    assert "not a valid .npy" in _error(str(tmp_path / "bad.npy"))
    np.save(tmp_path / "trunc.npy", ARRAY)
    data = (tmp_path / "trunc.npy").read_bytes()
    (tmp_path / "trunc.npy").write_bytes(data[:-10])
    msg = _error(str(tmp_path / "trunc.npy"))
    assert "corrupt" in msg and "trunc.npy" in msg
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    assert "unsupported dtype object" in _error(str(tmp_path / "obj.npy"))
    np.save(tmp_path / "str.npy", np.array(["a", "b"]))
    assert "unsupported dtype <U1" in _error(str(tmp_path / "str.npy"))
    np.save(tmp_path / "c.npy", np.zeros(3, complex))
    assert "unsupported dtype complex128" in _error(str(tmp_path / "c.npy"))
    np.save(tmp_path / "zero_d.npy", np.float32(1.0))
    assert "0-d" in _error(str(tmp_path / "zero_d.npy"))
    assert "has no keys" in _error(str(tmp_path / "c.npy") + ":k")


def test_npz_and_hdf5_errors(tmp_path: Path) -> None:
    np.savez(tmp_path / "two.npz", a=ARRAY, b=ARRAY)
    assert "holds 2 arrays" in _error(str(tmp_path / "two.npz"))
    assert "no array 'c'" in _error(str(tmp_path / "two.npz") + ":c")
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 not really a zip")
    assert "not a readable .npz" in _error(str(tmp_path / "bad.npz"))
    with zipfile.ZipFile(tmp_path / "trunc.npz", "w") as z:
        z.writestr("a.npy", b"\x93NUMPY\x01\x00")
    assert "not a valid .npy" in _error(str(tmp_path / "trunc.npz"))
    with h5py.File(tmp_path / "d.h5", "w") as f:
        f.create_dataset("g/a", data=ARRAY)
        f.create_dataset("s", data=np.array([b"x", b"y"]))
    assert "no dataset 'nope'" in _error(str(tmp_path / "d.h5") + ":nope")
    assert "is a group" in _error(str(tmp_path / "d.h5") + ":g")
    assert "unsupported dtype" in _error(str(tmp_path / "d.h5") + ":s")
    assert "holds 2 datasets" in _error(str(tmp_path / "d.h5"))
    (tmp_path / "bad.h5").write_bytes(b"\x89HDF\r\n\x1a\n broken")
    assert "not a readable HDF5" in _error(str(tmp_path / "bad.h5"))


def test_directory_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no .npy files" in _error(str(empty))
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    np.save(mixed / "a.npy", np.zeros((2, 3)))
    np.save(mixed / "b.npy", np.zeros((2, 4)))
    assert "b.npy" in _error(str(mixed)) and "(4,)" in _error(str(mixed))


def _pair_error(a: str, b: str) -> str:
    with open_source(a) as p, open_source(b) as t, pytest.raises(InputError) as info:
        check_pair(p, t)
    return str(info.value)


def test_pair_errors(tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", np.zeros((4, 3)))
    np.save(tmp_path / "b.npy", np.zeros((5, 3)))
    np.save(tmp_path / "c.npy", np.zeros((4, 2)))
    np.save(tmp_path / "e.npy", np.zeros((0, 3)))
    np.save(tmp_path / "f.npy", np.zeros((4, 0)))
    assert "different sample counts" in _pair_error(
        str(tmp_path / "a.npy"), str(tmp_path / "b.npy")
    )
    assert "different shapes" in _pair_error(str(tmp_path / "a.npy"), str(tmp_path / "c.npy"))
    assert "no samples" in _pair_error(str(tmp_path / "e.npy"), str(tmp_path / "e.npy"))
    assert "samples are empty" in _pair_error(str(tmp_path / "f.npy"), str(tmp_path / "f.npy"))
    d1, d2 = tmp_path / "d1", tmp_path / "d2"
    d1.mkdir()
    d2.mkdir()
    np.save(d1 / "x.npy", np.zeros((2, 3)))
    np.save(d1 / "y.npy", np.zeros((2, 3)))
    np.save(d2 / "x.npy", np.zeros((2, 3)))
    np.save(d2 / "z.npy", np.zeros((2, 3)))
    msg = _pair_error(str(d1), str(d2))
    assert "directories differ" in msg and "'y.npy'" in msg and "'z.npy'" in msg
    d3, d4 = tmp_path / "d3", tmp_path / "d4"
    d3.mkdir()
    d4.mkdir()
    np.save(d3 / "x.npy", np.zeros((2, 3)))
    np.save(d3 / "y.npy", np.zeros((1, 3)))
    np.save(d4 / "x.npy", np.zeros((1, 3)))
    np.save(d4 / "y.npy", np.zeros((2, 3)))
    assert "x.npy: 2 samples" in _pair_error(str(d3), str(d4))
    np.save(d4 / "x.npy", np.zeros((2, 3)))
    np.save(d4 / "y.npy", np.zeros((1, 3)))
    with open_source(str(d3)) as p, open_source(str(d4)) as t:
        check_pair(p, t)  # same names and lengths: accepted
