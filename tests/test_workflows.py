"""The GitHub Actions workflows, which cannot run here, are validated statically.

Each file is checked against the GitHub workflow JSON schema by check-jsonschema (a real
validator from PyPI, with the schema vendored in it, so no network is needed), and the
jobs the release process depends on are checked to be present and wired as documented.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

yaml = pytest.importorskip("ruamel.yaml", reason="installed with check-jsonschema")

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"
WORKFLOW_FILES = sorted(WORKFLOWS.glob("*.yml"))


def check_jsonschema(*paths: Path) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("check-jsonschema", path=str(Path(sys.executable).parent))
    exe = exe or shutil.which("check-jsonschema")
    assert exe, "check-jsonschema is not installed (it is in the `test` extra)"
    return subprocess.run(
        [exe, "--builtin-schema", "vendor.github-workflows", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.YAML(typ="safe").load((WORKFLOWS / name).read_text())
    return data


def steps_text(job: dict[str, Any]) -> str:
    return "\n".join(str(step.get("run", "")) + str(step.get("uses", "")) for step in job["steps"])


def uses(job: dict[str, Any]) -> list[str]:
    return [step["uses"] for step in job["steps"] if "uses" in step]


def test_workflow_files_exist() -> None:
    assert {p.name for p in WORKFLOW_FILES} >= {"wheels.yml", "lint.yml"}


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda p: p.name)
def test_workflow_matches_github_schema(path: Path) -> None:
    result = check_jsonschema(path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_validator_rejects_a_broken_workflow(tmp_path: Path) -> None:
    # A job without runs-on and a step that is neither `run` nor `uses`: if the validator
    # accepted this, the test above would prove nothing.
    broken = tmp_path / "broken.yml"
    broken.write_text("on: push\njobs:\n  build:\n    steps:\n      - name: nothing\n")
    result = check_jsonschema(broken)
    assert result.returncode != 0
    assert "broken.yml" in result.stdout + result.stderr


def test_wheels_workflow_triggers() -> None:
    on = load("wheels.yml")["on"]
    assert "pull_request" in on
    assert on["push"]["branches"] == ["main"]
    assert on["push"]["tags"] == ["v*"]


def test_wheels_built_for_every_platform_with_maturin_action() -> None:
    jobs = load("wheels.yml")["jobs"]
    linux = jobs["linux"]
    assert sorted(linux["strategy"]["matrix"]["target"]) == ["aarch64", "x86_64"]
    macos = {entry["target"] for entry in jobs["macos"]["strategy"]["matrix"]["include"]}
    assert macos == {"x86_64", "aarch64"}
    for name in ("linux", "macos", "windows", "sdist"):
        builds = [
            s for s in jobs[name]["steps"] if s.get("uses", "").startswith("PyO3/maturin-action@")
        ]
        assert len(builds) == 1, name
    linux_build = next(s for s in linux["steps"] if "maturin-action" in s.get("uses", ""))
    assert linux_build["with"]["manylinux"] == "2014"
    assert "--release" in linux_build["with"]["args"]
    windows_build = next(
        s for s in jobs["windows"]["steps"] if "maturin-action" in s.get("uses", "")
    )
    assert windows_build["with"]["target"] == "x64"
    sdist_build = next(s for s in jobs["sdist"]["steps"] if "maturin-action" in s.get("uses", ""))
    assert sdist_build["with"]["command"] == "sdist"


def test_every_artifact_is_installed_and_tested() -> None:
    jobs = load("wheels.yml")["jobs"]
    uploaded = set()
    for name in ("linux", "macos", "windows", "sdist"):
        job = jobs[name]
        upload = next(
            s for s in job["steps"] if s.get("uses", "").startswith("actions/upload-artifact")
        )
        artifact = upload["with"]["name"]
        matrix = job.get("strategy", {}).get("matrix", {})
        if "target" in matrix:
            uploaded |= {artifact.replace("${{ matrix.target }}", t) for t in matrix["target"]}
        elif "include" in matrix:
            uploaded |= {
                artifact.replace("${{ matrix.target }}", e["target"]) for e in matrix["include"]
            }
        else:
            uploaded.add(artifact)
    test = jobs["test"]
    tested = {"wheels-" + e["artifact"] for e in test["strategy"]["matrix"]["include"]}
    assert (
        uploaded
        == tested
        == {
            "wheels-linux-x86_64",
            "wheels-linux-aarch64",
            "wheels-macos-x86_64",
            "wheels-macos-aarch64",
            "wheels-windows-x64",
            "wheels-sdist",
        }
    )
    text = steps_text(test)
    assert "pip install --no-deps dist/*" in text
    assert "ACBMSE_EXPECT_INSTALLED_UNDER" in text and "pytest" in text


def test_publish_uses_trusted_publishing_on_tags_only() -> None:
    jobs = load("wheels.yml")["jobs"]
    publish = jobs["publish"]
    assert publish["if"] == "startsWith(github.ref, 'refs/tags/v')"
    assert publish["needs"] == ["test"]
    assert publish["permissions"] == {"id-token": "write"}
    assert publish["environment"]["name"] == "pypi"
    step = next(
        s for s in publish["steps"] if s.get("uses", "").startswith("pypa/gh-action-pypi-publish")
    )
    # Trusted publishing: no API token or password is passed.
    assert not {"password", "user"} & set(step.get("with", {}))
    assert "secrets." not in (WORKFLOWS / "wheels.yml").read_text()
    # Every other job gets read-only repository access.
    assert load("wheels.yml")["permissions"] == {"contents": "read"}


def test_lint_jobs_are_separate() -> None:
    lint = load("lint.yml")
    jobs = lint["jobs"]
    assert "pull_request" in lint["on"]
    assert "cargo fmt --all -- --check" in steps_text(jobs["rustfmt"])
    assert "cargo clippy --all-targets -- -D warnings" in steps_text(jobs["clippy"])
    assert "ruff check" in steps_text(jobs["ruff"])
    assert "mypy" in steps_text(jobs["mypy"])
    assert "scripts/check_stubs.py" in steps_text(jobs["mypy"])
    for job in jobs.values():
        assert uses(job)[0].startswith("actions/checkout@")
