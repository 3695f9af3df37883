"""scripts/check_stubs.py passes on the shipped stub and catches a stub that drifted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import acbmse_rs._core
import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "check_stubs.py"
STUB = Path(acbmse_rs._core.__file__).parent / "_core.pyi"


def run_checker(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120
    )


def test_shipped_stub_matches_compiled_module() -> None:
    result = run_checker()
    assert result.returncode == 0, result.stderr
    assert "matches acbmse_rs._core" in result.stdout
    assert str(STUB) in result.stdout


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        # A wrong default value.
        (
            "nonzero_weighting: float = 1.0,\n) -> float: ...",
            "nonzero_weighting: float = 2.0,\n) -> float: ...",
            "acb_mse: default of nonzero_weighting: stub 2.0, module 1.0",
        ),
        # A renamed parameter.
        ("def get_num_threads() -> int", "def get_num_threads(n: int) -> int", "get_num_threads"),
        # A function the module does not have.
        ("def get_num_threads()", "def get_thread_count()", "get_thread_count: in the stub"),
        # A getter declared as a method.
        ("    @property\n    def n_total", "    def n_total", "ClassStats.n_total: a getter"),
    ],
    ids=["default", "parameter", "unknown-function", "property"],
)
def test_checker_reports_drift(tmp_path: Path, old: str, new: str, message: str) -> None:
    text = STUB.read_text(encoding="utf-8")
    assert old in text, f"test fixture out of date: {old!r} not in the stub"
    broken = tmp_path / "_core.pyi"
    broken.write_text(text.replace(old, new, 1), encoding="utf-8")
    result = run_checker("--stub", str(broken))
    assert result.returncode == 1
    assert message in result.stderr, result.stderr


def test_checker_reports_a_missing_function(tmp_path: Path) -> None:
    text = STUB.read_text(encoding="utf-8")
    start = text.index("def validate_weights(")
    broken = tmp_path / "_core.pyi"
    broken.write_text(text[:start], encoding="utf-8")
    result = run_checker("--stub", str(broken))
    assert result.returncode == 1
    assert "validate_weights: in the module, missing from the stub" in result.stderr
