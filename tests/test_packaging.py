"""The installed package: import cost, version single-sourcing, metadata and shipped files.

These run against whatever ``acbmse_rs`` is importable: the editable install during
development, the installed wheel or sdist build under scripts/check_dist.sh (which sets
ACBMSE_EXPECT_INSTALLED_UNDER to the virtual environment it installed into).
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import acbmse_rs
import acbmse_rs._core
import pytest

ROOT = Path(__file__).resolve().parents[1]
DIST = "acbmse-rs"
HEAVY_MODULES = ("torch", "dask", "distributed", "h5py", "matplotlib", "sklearn", "acb_mse")


def cargo_version() -> str:
    text = (ROOT / "Cargo.toml").read_text(encoding="utf-8")
    package = text.split("[package]", 1)[1].split("\n[", 1)[0]
    match = re.search(r'^version\s*=\s*"([^"]+)"', package, re.MULTILINE)
    assert match, "no version in Cargo.toml's [package] table"
    return match.group(1)


def run_python(code: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    return out.stdout


IMPORT_BUDGET = 0.100  # seconds, for `import acbmse_rs` in a fresh interpreter
OWN_BUDGET = 0.030  # seconds that acbmse_rs may add to NumPy's own import


def import_times(runs: int = 7) -> tuple[float, float]:
    """Fastest wall times of `import numpy` and of `import acbmse_rs` (numpy included),
    each in a fresh interpreter, the two alternating so that both see the same load."""
    code = "import time; t = time.perf_counter(); import {}; print(time.perf_counter() - t)"
    numpy_times, package_times = [], []
    for _ in range(runs):
        numpy_times.append(float(run_python(code.format("numpy"))))
        package_times.append(float(run_python(code.format("acbmse_rs"))))
    return min(numpy_times), min(package_times)


def test_import_adds_little_to_numpy() -> None:
    numpy_time, package_time = import_times()
    assert package_time - numpy_time < OWN_BUDGET, (
        f"import acbmse_rs: {package_time * 1e3:.1f} ms, of which numpy {numpy_time * 1e3:.1f} ms"
    )


def test_import_is_under_100_ms() -> None:
    numpy_time, package_time = import_times()
    if numpy_time > IMPORT_BUDGET - OWN_BUDGET:
        # Only NumPy's own import can be at fault here, and the test above bounds ours.
        pytest.skip(f"numpy alone takes {numpy_time * 1e3:.0f} ms to import on this machine now")
    assert package_time < IMPORT_BUDGET, f"import acbmse_rs took {package_time * 1e3:.1f} ms"


def test_import_does_not_import_optional_dependencies() -> None:
    code = "import sys, json, acbmse_rs; print(json.dumps(sorted(sys.modules)))"
    loaded = set(json.loads(run_python(code)))
    heavy = sorted(m for m in loaded if m.split(".")[0] in HEAVY_MODULES)
    assert heavy == [], f"import acbmse_rs imported {heavy}"


def test_version_is_single_sourced_from_cargo_toml() -> None:
    version = cargo_version()
    assert acbmse_rs.__version__ == version
    assert acbmse_rs._core.__version__ == version
    assert importlib.metadata.version(DIST) == version


def test_package_metadata() -> None:
    meta = importlib.metadata.metadata(DIST)
    assert meta["Name"] == DIST
    assert "ACB-MSE" in meta["Summary"]
    assert meta["Requires-Python"] == ">=3.9"
    assert meta["Description-Content-Type"].startswith("text/markdown")
    # The README is the long description.
    readme_title = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()[0]
    assert readme_title in (meta.get_payload() or meta["Description"] or "")  # type: ignore[attr-defined]
    classifiers = meta.get_all("Classifier") or []
    assert "License :: OSI Approved :: MIT License" in classifiers
    assert "Typing :: Typed" in classifiers
    assert any(c.startswith("Programming Language :: Python :: 3") for c in classifiers)
    urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL") or [])
    assert {"Homepage", "Issues", "Changelog"} <= urls.keys()
    extras = set(meta.get_all("Provides-Extra") or [])
    assert {"torch", "dask", "hdf5", "plot", "test"} <= extras
    requires = importlib.metadata.requires(DIST) or []
    core = [r for r in requires if "extra ==" not in r]
    assert [r.split(">")[0].split("=")[0].strip() for r in core] == ["numpy"], core
    for extra, package in [("torch", "torch"), ("dask", "dask"), ("hdf5", "h5py")]:
        assert any(
            r.startswith(package) and f"extra == '{extra}'" in r.replace('"', "'") for r in requires
        ), (extra, requires)


def test_typing_files_ship_beside_the_package() -> None:
    package_dir = Path(acbmse_rs.__file__).parent
    assert (package_dir / "py.typed").is_file()
    assert (package_dir / "_core.pyi").is_file()
    assert Path(acbmse_rs._core.__file__).parent == package_dir


def test_installed_files_recorded() -> None:
    files = {str(f).replace("\\", "/") for f in importlib.metadata.files(DIST) or []}
    if any(f.endswith(".pth") for f in files) and "acbmse_rs/__init__.py" not in files:
        # An editable install records only a .pth file; the package is the source tree.
        pytest.skip("editable install: the wheel's RECORD is checked by scripts/check_dist.sh")
    info = f"acbmse_rs-{acbmse_rs.__version__}.dist-info"
    for name in (
        "acbmse_rs/__init__.py",
        "acbmse_rs/py.typed",
        "acbmse_rs/_core.pyi",
        f"{info}/licenses/LICENSE",
    ):
        assert name in files, f"{name} not in the installed RECORD"
    assert any(re.fullmatch(r"acbmse_rs/_core\..*(so|pyd)", f) for f in files), files


@pytest.mark.skipif(
    "ACBMSE_EXPECT_INSTALLED_UNDER" not in os.environ,
    reason="set by scripts/check_dist.sh when testing an installed wheel or sdist",
)
def test_imported_from_the_installed_distribution() -> None:
    prefix = Path(os.environ["ACBMSE_EXPECT_INSTALLED_UNDER"]).resolve()
    for module in (acbmse_rs, acbmse_rs._core):
        where = Path(module.__file__).resolve()  # type: ignore[arg-type]
        assert prefix in where.parents, f"{module.__name__} imported from {where}"
    assert not (Path(acbmse_rs.__file__).parent.parent.name == "python")
