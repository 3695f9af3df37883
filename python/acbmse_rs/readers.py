"""Readers that stream arrays from disk in chunks along axis 0 (the sample axis).

Supported inputs (see :func:`open_source`):

- ``file.npy``: memory-mapped read-only; each chunk is a view of the mapping, and
  the pages of a finished chunk are dropped from the process (``madvise``), so the
  resident memory stays bounded by the chunk size whatever the file size.
- ``file.npz:key`` (or ``file.npz`` holding a single array): the entry is streamed
  from the zip archive (stored or deflated) into a chunk buffer.
- ``file.h5:path/to/dataset`` (or a file holding a single dataset): read with h5py
  (an optional extra, ``pip install acbmse-rs[hdf5]``), chunk by chunk.
- a directory: its ``*.npy`` files in sorted file-name order, concatenated along
  axis 0; two directories are paired by file name.

Every problem with an input raises :class:`InputError`, whose message names the
file. Inputs are opened read-only and never modified.
"""

from __future__ import annotations

import mmap
import os
import zipfile
import zlib
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, BinaryIO, Literal

import numpy as np

from ._api import _REAL_KINDS

__all__ = [
    "ArraySource",
    "InputError",
    "check_pair",
    "default_chunk_samples",
    "iter_chunks",
    "open_source",
]

_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK\x03\x04"
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf", ".he5")

#: Default bytes per input array in one chunk.
DEFAULT_CHUNK_BYTES = 32 * 1024 * 1024

if TYPE_CHECKING:  # np.ndarray[...] is not subscriptable at run time before NumPy 1.22
    NDArray = np.ndarray[Any, Any]


class InputError(ValueError):
    """A problem with an input file: missing, unreadable, malformed or mismatched."""


def _check_dtype(label: str, dtype: np.dtype[Any]) -> None:
    if dtype.kind not in _REAL_KINDS or dtype.fields is not None or dtype.subdtype is not None:
        raise InputError(
            f"{label}: unsupported dtype {dtype}; expected real numbers (float, integer or bool)"
        )


class ArraySource(ABC):
    """An array on disk, read in chunks of whole samples along axis 0.

    Attributes:
        label: The input as the user named it, for messages.
        shape: The full array shape (axis 0 = samples).
        dtype: The element type (for a directory, that of its first file).
    """

    label: str
    shape: tuple[int, ...]
    dtype: np.dtype[Any]

    @property
    def n_samples(self) -> int:
        """Number of samples (length of axis 0)."""
        return self.shape[0]

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """Shape of one sample."""
        return self.shape[1:]

    def segments(self) -> list[int]:
        """Sample counts of the parts (files) a chunk must not straddle."""
        return [self.n_samples]

    @abstractmethod
    def read(self, start: int, stop: int) -> NDArray:
        """Samples ``start:stop``, which lie within one segment.

        The array may be a view that is only valid until :meth:`release` is called
        for the same range.
        """

    def release(self, start: int, stop: int) -> None:  # noqa: B027 (optional hook)
        """Tells the reader that samples ``start:stop`` are no longer needed."""

    def locate(self, index: int) -> str:
        """Where sample ``index`` lives, for people (a file and row for directories)."""
        return ""

    def close(self) -> None:  # noqa: B027 (optional hook)
        """Releases files and mappings."""

    def __enter__(self) -> ArraySource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------------------
# .npy headers


def _read_npy_header(fp: BinaryIO, label: str) -> tuple[tuple[int, ...], bool, np.dtype[Any]]:
    """Parses a .npy header, leaving ``fp`` at the start of the data."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(fp)
        if version == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(fp)
        elif version == (2, 0):
            shape, fortran, dtype = fmt.read_array_header_2_0(fp)
        else:
            reader = getattr(fmt, "_read_array_header", None)
            if reader is None:  # pragma: no cover - future NumPy
                raise ValueError(f"unsupported .npy format version {version}")
            shape, fortran, dtype = reader(fp, version)
    except (ValueError, OSError, EOFError, SyntaxError) as e:
        raise InputError(f"{label}: not a valid .npy file ({e})") from None
    _check_dtype(label, dtype)
    if len(shape) == 0:
        raise InputError(
            f"{label}: holds a 0-d array; need at least 1 dimension (axis 0 = samples)"
        )
    return tuple(int(n) for n in shape), bool(fortran), dtype


def _nbytes(shape: tuple[int, ...], dtype: np.dtype[Any]) -> int:
    n = dtype.itemsize
    for d in shape:
        n *= d
    return n


class NpySource(ArraySource):
    """A ``.npy`` file, memory-mapped read-only."""

    def __init__(self, path: str, label: str | None = None) -> None:
        self.label = label or path
        try:
            self._file: BinaryIO = open(path, "rb")  # noqa: SIM115 (kept open)
        except OSError as e:
            raise InputError(f"{self.label}: cannot open ({e.strerror or e})") from None
        try:
            self.shape, self._fortran, self.dtype = _read_npy_header(self._file, self.label)
            self._offset = self._file.tell()
            size = os.fstat(self._file.fileno()).st_size
            need = self._offset + _nbytes(self.shape, self.dtype)
            if size < need:
                raise InputError(
                    f"{self.label}: corrupt .npy file: header says shape {self.shape} "
                    f"{self.dtype} ({need} bytes with the header) but the file has {size} bytes"
                )
            self._mmap: mmap.mmap | None = None
            if need > self._offset:
                self._mmap = mmap.mmap(self._file.fileno(), need, access=mmap.ACCESS_READ)
                if hasattr(mmap, "MADV_SEQUENTIAL"):
                    self._mmap.madvise(mmap.MADV_SEQUENTIAL)
        except BaseException:
            self._file.close()
            raise
        self._row_bytes = _nbytes(self.shape[1:], self.dtype)

    def _array(self) -> NDArray:
        order: Literal["C", "F"] = "F" if self._fortran else "C"
        if self._mmap is None:
            empty: NDArray = np.empty(self.shape, dtype=self.dtype, order=order)
            return empty
        mapped: NDArray = np.ndarray(
            self.shape, self.dtype, buffer=self._mmap, offset=self._offset, order=order
        )
        return mapped

    def read(self, start: int, stop: int) -> NDArray:
        """A read-only view of samples ``start:stop`` of the mapping."""
        return self._array()[start:stop]

    def release(self, start: int, stop: int) -> None:
        """Drops the mapped pages of samples ``start:stop`` from this process.

        The pages stay in the page cache; only this process's resident set shrinks.
        (Fortran-ordered arrays spread each chunk over the whole file, so their
        whole mapping is dropped.)
        """
        if self._mmap is None or not hasattr(mmap, "MADV_DONTNEED"):
            return
        if self._fortran:
            begin, end = 0, len(self._mmap)
        else:
            begin = self._offset + start * self._row_bytes
            end = self._offset + stop * self._row_bytes
        begin -= begin % mmap.PAGESIZE
        if end > begin:
            self._mmap.madvise(mmap.MADV_DONTNEED, begin, end - begin)

    def close(self) -> None:
        """Unmaps and closes the file (views from :meth:`read` must be gone)."""
        if self._mmap is not None:
            try:
                self._mmap.close()
            except BufferError:  # a view is still alive; the GC will unmap
                pass
            self._mmap = None
        self._file.close()


class NpzSource(ArraySource):
    """One array of a ``.npz`` archive, streamed from the zip entry."""

    _fortran: bool
    _row_bytes: int
    _pos: int
    _whole: NDArray | None

    def __init__(self, path: str, key: str | None, label: str) -> None:
        self.label = label
        try:
            self._zip = zipfile.ZipFile(path)
        except (OSError, zipfile.BadZipFile, ValueError) as e:
            raise InputError(f"{label}: not a readable .npz file ({e})") from None
        try:
            names = [n for n in self._zip.namelist() if n.endswith(".npy")]
            keys = [n[: -len(".npy")] for n in names]
            if key is None:
                if len(keys) != 1:
                    raise InputError(
                        f"{label}: holds {len(keys)} arrays ({_listing(keys)}); "
                        f"name one as {path}:KEY"
                    )
                key = keys[0]
            elif key not in keys:
                raise InputError(f"{label}: no array {key!r} in the archive (has {_listing(keys)})")
            self._member = key + ".npy"
            self._stream: BinaryIO | None = None
            self._open_stream()
            assert self._stream is not None
            self.shape, self._fortran, self.dtype = _read_npy_header(self._stream, label)
            self._row_bytes = _nbytes(self.shape[1:], self.dtype)
            self._whole: NDArray | None = None
            self._pos = 0
        except zipfile.BadZipFile as e:
            self._zip.close()
            raise InputError(f"{label}: corrupt .npz file ({e})") from None
        except BaseException:
            self._zip.close()
            raise

    def _open_stream(self) -> None:
        if self._stream is not None:
            self._stream.close()
        self._stream = self._zip.open(self._member)  # type: ignore[assignment]

    def read(self, start: int, stop: int) -> NDArray:
        """Samples ``start:stop``, read from the zip stream (sequential access is fastest)."""
        if self._fortran:
            # Rows of a Fortran-ordered array are not contiguous: load it once.
            if self._whole is None:
                self._whole = self._read_whole()
            return self._whole[start:stop]
        if start != self._pos:  # rewind and skip: the stream only goes forward
            self._open_stream()
            assert self._stream is not None
            _read_npy_header(self._stream, self.label)
            self._skip(start * self._row_bytes)
        out = np.empty((stop - start, *self.shape[1:]), self.dtype)
        self._fill(out.reshape(-1).view(np.uint8).data)
        self._pos = stop
        return out

    def _skip(self, nbytes: int) -> None:
        buf = bytearray(min(nbytes, 1 << 20) or 1)
        while nbytes > 0:
            view = memoryview(buf)[: min(nbytes, len(buf))]
            self._fill(view)
            nbytes -= len(view)

    def _fill(self, view: memoryview) -> None:
        assert self._stream is not None
        got = 0
        try:
            while got < len(view):
                n = self._stream.readinto(view[got:])  # type: ignore[attr-defined]
                if not n:
                    raise InputError(f"{self.label}: corrupt .npz entry: data ends early")
                got += n
        except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as e:
            raise InputError(f"{self.label}: corrupt .npz entry ({e})") from None

    def _read_whole(self) -> NDArray:
        self._open_stream()
        assert self._stream is not None
        _read_npy_header(self._stream, self.label)
        flat = np.empty(int(np.prod(self.shape)), self.dtype)
        self._fill(flat.view(np.uint8).data)
        return flat.reshape(self.shape, order="F")

    def close(self) -> None:
        """Closes the archive."""
        if self._stream is not None:
            self._stream.close()
            self._stream = None
        self._whole = None
        self._zip.close()


class Hdf5Source(ArraySource):
    """A dataset of an HDF5 file, read with h5py (opened read-only)."""

    def __init__(self, path: str, key: str | None, label: str) -> None:
        self.label = label
        try:
            import h5py
        except ImportError:
            raise InputError(
                f"{label}: reading HDF5 needs h5py: pip install 'acbmse-rs[hdf5]'"
            ) from None
        try:
            self._file = h5py.File(path, "r")
        except OSError as e:
            raise InputError(f"{label}: not a readable HDF5 file ({e})") from None
        try:
            if key is None:
                found: list[str] = []
                self._file.visititems(
                    lambda name, obj: found.append(name) if isinstance(obj, h5py.Dataset) else None
                )
                if len(found) != 1:
                    raise InputError(
                        f"{label}: holds {len(found)} datasets ({_listing(found)}); "
                        f"name one as {path}:DATASET"
                    )
                key = found[0]
            obj = self._file.get(key)
            if obj is None:
                raise InputError(f"{label}: no dataset {key!r} in the file")
            if not isinstance(obj, h5py.Dataset):
                raise InputError(f"{label}: {key!r} is a group, not a dataset")
            self._ds = obj
            self.shape = tuple(int(n) for n in obj.shape)
            self.dtype = np.dtype(obj.dtype)
            _check_dtype(label, self.dtype)
            if len(self.shape) == 0:
                raise InputError(
                    f"{label}: holds a 0-d dataset; need at least 1 dimension (axis 0 = samples)"
                )
        except BaseException:
            self._file.close()
            raise

    def read(self, start: int, stop: int) -> NDArray:
        """Samples ``start:stop`` read from the dataset."""
        try:
            return np.asarray(self._ds[start:stop])
        except OSError as e:
            raise InputError(f"{self.label}: cannot read samples {start}:{stop} ({e})") from None

    def close(self) -> None:
        """Closes the file."""
        self._file.close()


class DirectorySource(ArraySource):
    """The ``*.npy`` files of a directory, in sorted name order, along axis 0."""

    def __init__(self, path: str, label: str) -> None:
        self.label = label
        try:
            names = sorted(
                n
                for n in os.listdir(path)
                if n.endswith(".npy") and os.path.isfile(os.path.join(path, n))
            )
        except OSError as e:
            raise InputError(f"{label}: cannot list directory ({e.strerror or e})") from None
        if not names:
            raise InputError(f"{label}: directory has no .npy files")
        self.names = names
        self._paths = [os.path.join(path, n) for n in names]
        counts: list[int] = []
        sample_shape: tuple[int, ...] | None = None
        dtype: np.dtype[Any] | None = None
        for name, p in zip(names, self._paths):
            with NpySource(p, label=os.path.join(label, name)) as src:
                if sample_shape is None:
                    sample_shape, dtype = src.sample_shape, src.dtype
                elif src.sample_shape != sample_shape:
                    raise InputError(
                        f"{src.label}: samples have shape {src.sample_shape} but "
                        f"{os.path.join(label, names[0])} has {sample_shape}"
                    )
                counts.append(src.n_samples)
        assert sample_shape is not None and dtype is not None
        self.counts = counts
        self._starts = np.cumsum([0, *counts])
        self.shape = (int(self._starts[-1]), *sample_shape)
        self.dtype = dtype
        self._open: tuple[int, NpySource] | None = None

    def segments(self) -> list[int]:
        """One segment per file."""
        return list(self.counts)

    def _file_of(self, index: int) -> int:
        return int(np.searchsorted(self._starts, index, side="right") - 1)

    def _source(self, k: int) -> NpySource:
        if self._open is None or self._open[0] != k:
            self._close_open()
            name = os.path.join(self.label, self.names[k])
            self._open = (k, NpySource(self._paths[k], label=name))
        return self._open[1]

    def read(self, start: int, stop: int) -> NDArray:
        """Samples ``start:stop``, all from one file."""
        k = self._file_of(start)
        base = int(self._starts[k])
        return self._source(k).read(start - base, stop - base)

    def release(self, start: int, stop: int) -> None:
        """Drops the pages of the range; closes a file once it is finished."""
        if self._open is None:
            return
        k, src = self._open
        base = int(self._starts[k])
        src.release(start - base, stop - base)
        if stop >= int(self._starts[k + 1]):
            self._close_open()

    def locate(self, index: int) -> str:
        """``name.npy[row]`` of sample ``index``."""
        k = self._file_of(index)
        return f"{self.names[k]}[{index - int(self._starts[k])}]"

    def _close_open(self) -> None:
        if self._open is not None:
            self._open[1].close()
            self._open = None

    def close(self) -> None:
        """Closes the file in use."""
        self._close_open()


def _listing(items: list[str], limit: int = 5) -> str:
    if not items:
        return "none"
    shown = ", ".join(repr(i) for i in items[:limit])
    return shown + (f", ... ({len(items)} in all)" if len(items) > limit else "")


def _sniff(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(8)
    except OSError as e:
        raise InputError(f"{path}: cannot open ({e.strerror or e})") from None


def _split_spec(spec: str) -> tuple[str, str | None]:
    """Splits ``file:key`` into the path and the key (None when there is no key)."""
    if os.path.exists(spec):
        return spec, None
    pos = spec.find(":")
    while pos != -1:
        head = spec[:pos]
        if head and os.path.isfile(head):
            return head, spec[pos + 1 :] or None
        pos = spec.find(":", pos + 1)
    # Nothing exists: report the file part if it looks like file:key.
    head, sep, _ = spec.partition(":")
    if sep and head.lower().endswith((".npz", *_HDF5_SUFFIXES)):
        return head, None
    return spec, None


def open_source(spec: str) -> ArraySource:
    """Opens an input named as on the command line (see the module docstring).

    Raises:
        InputError: For a missing or unreadable file, an unknown format, a corrupt
            file, a missing key or dataset, or a non-numeric dtype.
    """
    path, key = _split_spec(spec)
    if not os.path.exists(path):
        raise InputError(f"{path}: no such file or directory")
    if os.path.isdir(path):
        if key is not None:
            raise InputError(f"{spec}: a directory takes no :KEY")
        return DirectorySource(path, label=path)
    lower = path.lower()
    magic = _sniff(path)
    if lower.endswith(".npy") or (magic.startswith(_NPY_MAGIC) and not lower.endswith(".npz")):
        if key is not None:
            raise InputError(f"{spec}: {path} is a .npy file, which has no keys")
        return NpySource(path)
    if lower.endswith(".npz") or magic.startswith(_ZIP_MAGIC):
        return NpzSource(path, key, label=spec)
    if lower.endswith(_HDF5_SUFFIXES) or magic.startswith(_HDF5_MAGIC):
        return Hdf5Source(path, key, label=spec)
    raise InputError(
        f"{path}: unknown format; expected a .npy file, a .npz file (file.npz:key), "
        "an HDF5 file (file.h5:dataset) or a directory of .npy files"
    )


def check_pair(pred: ArraySource, target: ArraySource) -> None:
    """Checks that two inputs can be scored against each other.

    Raises:
        InputError: If the sample counts or sample shapes differ, if either has no
            samples or empty samples, or if two directories hold different file
            names or paired files of different lengths.
    """
    if pred.n_samples != target.n_samples:
        raise InputError(
            f"PRED and TARGET have different sample counts: {pred.label} has "
            f"{pred.n_samples} (shape {pred.shape}), {target.label} has "
            f"{target.n_samples} (shape {target.shape})"
        )
    if pred.shape != target.shape:
        raise InputError(
            f"PRED and TARGET have different shapes: {pred.label} is {pred.shape}, "
            f"{target.label} is {target.shape}"
        )
    if pred.n_samples == 0:
        raise InputError(f"{pred.label}: has no samples (shape {pred.shape})")
    if 0 in pred.sample_shape:
        raise InputError(f"{pred.label}: samples are empty (shape {pred.shape})")
    if isinstance(pred, DirectorySource) and isinstance(target, DirectorySource):
        only_pred = sorted(set(pred.names) - set(target.names))
        only_target = sorted(set(target.names) - set(pred.names))
        if only_pred or only_target:
            parts = []
            if only_pred:
                parts.append(f"only in {pred.label}: {_listing(only_pred)}")
            if only_target:
                parts.append(f"only in {target.label}: {_listing(only_target)}")
            raise InputError("PRED and TARGET directories differ: " + "; ".join(parts))
        for name, a, b in zip(pred.names, pred.counts, target.counts):
            if a != b:
                raise InputError(f"{name}: {a} samples in {pred.label} but {b} in {target.label}")


def default_chunk_samples(
    pred: ArraySource, target: ArraySource, chunk_bytes: int = DEFAULT_CHUNK_BYTES
) -> int:
    """Samples per chunk so that one chunk of either input is about ``chunk_bytes``."""
    per_sample = max(
        _nbytes(pred.sample_shape, pred.dtype), _nbytes(target.sample_shape, target.dtype), 1
    )
    return max(1, chunk_bytes // per_sample)


def iter_chunks(
    pred: ArraySource, target: ArraySource, chunk_samples: int
) -> Iterator[tuple[int, NDArray, NDArray]]:
    """Yields ``(start, pred_chunk, target_chunk)`` along axis 0.

    Chunks hold at most ``chunk_samples`` samples and never straddle a file
    boundary of either input (the chunk grid restarts at each file). A chunk's
    arrays are valid until the next one is requested; their pages are then
    released.
    """
    if chunk_samples < 1:
        raise ValueError(f"chunk_samples must be >= 1, got {chunk_samples}")
    bounds = {0, pred.n_samples}
    for src in (pred, target):
        bounds.update(int(b) for b in np.cumsum(src.segments()))
    edges = sorted(b for b in bounds if 0 <= b <= pred.n_samples)
    for lo, hi in zip(edges[:-1], edges[1:]):
        for start in range(lo, hi, chunk_samples):
            stop = min(start + chunk_samples, hi)
            p, t = pred.read(start, stop), target.read(start, stop)
            yield start, p, t
            del p, t
            pred.release(start, stop)
            target.release(start, stop)
