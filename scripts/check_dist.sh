#!/usr/bin/env bash
# Builds the release wheel and the sdist, then proves that each installs and passes the
# tests without the source tree:
#   1. `maturin build --release` -> one abi3 wheel (cp39-abi3, manylinux tag), contents
#      checked, `auditwheel show` must call it manylinux;
#   2. `maturin sdist` -> the source distribution, contents checked;
#   3. the wheel goes into a fresh virtual environment in which cargo and rustc are NOT
#      on PATH, and the test suite runs against it from a copy of the repository that
#      has no python/ folder (so only the installed package can be imported; the tests
#      also assert that acbmse_rs and its native module load from the venv);
#   4. the same with a package that pip builds from the sdist (this step needs cargo).
#
# Usage: bash scripts/check_dist.sh            (from anywhere; run by scripts/test.sh)
# Environment:
#   PYTHON                    interpreter for the venvs (default python3)
#   CHECK_DIST_PYTEST_ARGS    pytest arguments (default: -q -m "not slow"; the tests
#                             marked slow start process groups or clusters and are run
#                             by the main pytest run of scripts/test.sh)
#   CHECK_DIST_SYSTEM_SITE    1 (default): venvs see the interpreter's site-packages, so
#                             the test extras (torch, dask, ...) installed by
#                             scripts/test.sh are reused instead of downloaded again; the
#                             wheel itself is always installed into the venv and the
#                             import location is asserted. 0: plain venvs, everything is
#                             installed from PyPI (slow: torch is large).
#   CHECK_DIST_KEEP           1: keep the work folder (printed at the start).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"

PYTHON="${PYTHON:-python3}"
PYTEST_ARGS="${CHECK_DIST_PYTEST_ARGS:--q -m \"not slow\"}"
SYSTEM_SITE="${CHECK_DIST_SYSTEM_SITE:-1}"
START=$SECONDS

WORK="$(mktemp -d "${TMPDIR:-/tmp}/acbmse-check-dist.XXXXXX")"
cleanup() {
    if [ "${CHECK_DIST_KEEP:-0}" = 1 ]; then
        echo "check_dist: work folder kept: $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
echo "check_dist: work folder $WORK"

fail() {
    echo "check_dist: FAILED: $*" >&2
    exit 1
}

VERSION="$("$PYTHON" - <<'EOF'
import re
text = open("Cargo.toml", encoding="utf-8").read()
package = text.split("[package]", 1)[1].split("\n[", 1)[0]
print(re.search(r'^version\s*=\s*"([^"]+)"', package, re.M).group(1))
EOF
)"
ARCH="$(uname -m)"
echo "check_dist: acbmse-rs $VERSION on $ARCH"

# ---------------------------------------------------------------------------------------
echo "== check_dist: build the wheel (maturin build --release)"
if ! "$PYTHON" -m maturin --version >/dev/null 2>&1; then
    "$PYTHON" -m pip install --quiet "maturin>=1.9,<2"
fi
"$PYTHON" -m maturin build --release --out "$WORK/wheel" 2>&1 | tail -n 3
WHEELS=("$WORK"/wheel/*.whl)
[ "${#WHEELS[@]}" -eq 1 ] || fail "expected one wheel, got: ${WHEELS[*]}"
WHEEL="${WHEELS[0]}"
WHEEL_NAME="$(basename "$WHEEL")"
echo "wheel: $WHEEL_NAME ($(du -k "$WHEEL" | cut -f1) KiB)"
case "$WHEEL_NAME" in
    "acbmse_rs-$VERSION-cp39-abi3-manylinux_"*"_$ARCH.whl") ;;
    *) fail "wheel name $WHEEL_NAME is not acbmse_rs-$VERSION-cp39-abi3-manylinux_*_$ARCH.whl" ;;
esac

echo "== check_dist: wheel contents"
"$PYTHON" - "$WHEEL" "$VERSION" <<'EOF'
import sys, zipfile
wheel, version = sys.argv[1], sys.argv[2]
names = set(zipfile.ZipFile(wheel).namelist())
info = f"acbmse_rs-{version}.dist-info"
required = [
    "acbmse_rs/__init__.py", "acbmse_rs/_core.pyi", "acbmse_rs/py.typed",
    f"{info}/METADATA", f"{info}/WHEEL", f"{info}/RECORD", f"{info}/licenses/LICENSE",
]
missing = [n for n in required if n not in names]
native = [n for n in names if n.startswith("acbmse_rs/_core.") and n.endswith((".so", ".pyd"))]
if len(native) != 1 or not native[0].startswith("acbmse_rs/_core.abi3."):
    missing.append(f"exactly one abi3 native module acbmse_rs/_core.abi3.* (found {native})")
stray = [n for n in names if n.split("/")[0] not in ("acbmse_rs", info)]
if missing or stray:
    sys.exit(f"wheel contents: missing {missing}, unexpected {stray}")
meta = zipfile.ZipFile(wheel).read(f"{info}/METADATA").decode()
for field in ("Requires-Python: >=3.9", "Description-Content-Type: text/markdown",
              "Provides-Extra: torch", "Provides-Extra: test"):
    if field not in meta:
        sys.exit(f"METADATA lacks {field!r}")
print(f"ok: {len(names)} files, native module {native[0]}")
EOF

# ---------------------------------------------------------------------------------------
echo "== check_dist: auditwheel show"
AUDITWHEEL=("$PYTHON" -m auditwheel)
if ! "$PYTHON" -c "import auditwheel" 2>/dev/null; then  # not installed: a venv of its own
    "$PYTHON" -m venv "$WORK/tools"
    "$WORK/tools/bin/python" -m pip install --quiet "auditwheel>=6"
    AUDITWHEEL=("$WORK/tools/bin/python" -m auditwheel)
fi
"${AUDITWHEEL[@]}" show "$WHEEL" | tee "$WORK/auditwheel.txt"
# auditwheel wraps its lines: match on the text joined into one line.
AUDIT="$(tr -s '\n ' '  ' <"$WORK/auditwheel.txt")"
AUDIT_TAG="$(grep -o 'consistent with the following platform tag: "manylinux_[0-9]*_[0-9]*_[a-z0-9_]*"' <<<"$AUDIT" | grep -o 'manylinux_[0-9a-z_]*')" \
    || fail "auditwheel does not call $WHEEL_NAME manylinux"
case "$WHEEL_NAME" in
    *"-$AUDIT_TAG.whl") ;;
    *) fail "the wheel is tagged ${WHEEL_NAME##*-} but auditwheel says $AUDIT_TAG" ;;
esac
GLIBC="$(sed -E 's/^manylinux_([0-9]+)_([0-9]+)_.*/\1.\2/' <<<"$AUDIT_TAG")"
echo "auditwheel: $AUDIT_TAG; the wheel needs glibc >= $GLIBC"

# ---------------------------------------------------------------------------------------
echo "== check_dist: build the sdist (maturin sdist)"
"$PYTHON" -m maturin sdist --out "$WORK/sdist" 2>&1 | tail -n 1
SDISTS=("$WORK"/sdist/*.tar.gz)
[ "${#SDISTS[@]}" -eq 1 ] || fail "expected one sdist, got: ${SDISTS[*]}"
SDIST="${SDISTS[0]}"
echo "sdist: $(basename "$SDIST") ($(du -k "$SDIST" | cut -f1) KiB)"
"$PYTHON" - "$SDIST" "$VERSION" <<'EOF'
import sys, tarfile
sdist, version = sys.argv[1], sys.argv[2]
top = f"acbmse_rs-{version}"
names = {n.split("/", 1)[1] for n in tarfile.open(sdist).getnames() if "/" in n}
required = ["Cargo.toml", "Cargo.lock", "pyproject.toml", "README.md", "LICENSE", "PKG-INFO",
            "src/lib.rs", "python/acbmse_rs/__init__.py", "python/acbmse_rs/_core.pyi",
            "python/acbmse_rs/py.typed"]
missing = [n for n in required if n not in names]
junk = [n for n in names if n.endswith((".so", ".pyd", ".pyc")) or n.startswith("target/")]
if missing or junk:
    sys.exit(f"sdist contents: missing {missing}, must not contain {junk}")
print(f"ok: {len(names)} files under {top}/")
EOF

# ---------------------------------------------------------------------------------------
# A copy of the repository without python/ (tests, scripts, workflows, Cargo.toml, ...),
# so the tests that read repository files find them but cannot import the source package.
TREE="$WORK/tree"
mkdir -p "$TREE"
git ls-files -z --cached --others --exclude-standard \
    | grep -zv -e '^python/' -e '^target/' \
    | while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done \
    | xargs -0 cp --parents -t "$TREE"
[ ! -e "$TREE/python" ] || fail "the test tree must not contain python/"

# PATH without cargo and rustc (every entry that holds either is dropped).
NO_RUST_PATH=""
IFS=: read -r -a path_entries <<<"$PATH"
for dir in "${path_entries[@]}"; do
    if [ -n "$dir" ] && [ ! -x "$dir/cargo" ] && [ ! -x "$dir/rustc" ]; then
        NO_RUST_PATH="${NO_RUST_PATH:+$NO_RUST_PATH:}$dir"
    fi
done

make_venv() {  # make_venv DIR
    if [ "$SYSTEM_SITE" = 1 ]; then
        "$PYTHON" -m venv --system-site-packages "$1"
    else
        "$PYTHON" -m venv "$1"
    fi
}

run_tests() {  # run_tests VENV LABEL
    local venv="$1" label="$2"
    echo "== check_dist: [$label] tests against the installed package (no cargo/rustc on PATH)"
    (
        export PATH="$venv/bin:$NO_RUST_PATH"
        export VIRTUAL_ENV="$venv"
        unset PYTHONPATH
        export ACBMSE_EXPECT_INSTALLED_UNDER="$venv"
        if command -v cargo >/dev/null || command -v rustc >/dev/null; then
            fail "cargo or rustc is still on PATH"
        fi
        cd "$TREE"
        python - "$venv" <<'EOF'
import sys
from pathlib import Path
import acbmse_rs, acbmse_rs._core as core
venv = Path(sys.argv[1]).resolve()
for mod in (acbmse_rs, core):
    where = Path(mod.__file__).resolve()
    if venv not in where.parents:
        sys.exit(f"{mod.__name__} was imported from {where}, not from the venv {venv}")
print(f"acbmse_rs {acbmse_rs.__version__} imported from {Path(core.__file__).resolve()}")
EOF
        set +e
        eval "python -m pytest -p no:cacheprovider $PYTEST_ARGS"
        local status=$?
        set -e
        if [ "$status" -eq 5 ]; then
            fail "[$label] pytest collected no tests"
        elif [ "$status" -ne 0 ]; then
            fail "[$label] pytest exited with status $status"
        fi
    )
}

install_extras() {  # install_extras VENV: test extras the venv does not see yet
    # acbmse-rs itself is installed already (and satisfies the name), so pip only
    # fetches the extras' requirements that the venv cannot see yet.
    "$1/bin/python" -m pip install --quiet "acbmse-rs[test]"
}

# ---------------------------------------------------------------------------------------
VENV_WHEEL="$WORK/venv-wheel"
make_venv "$VENV_WHEEL"
echo "== check_dist: [wheel] install $WHEEL_NAME"
# --force-reinstall --no-deps: install into the venv even when an editable install of
# the same version is visible through the system site-packages.
PATH="$NO_RUST_PATH" "$VENV_WHEEL/bin/python" -m pip install --quiet --no-index \
    --force-reinstall --no-deps "$WHEEL"
PATH="$NO_RUST_PATH" install_extras "$VENV_WHEEL"
run_tests "$VENV_WHEEL" wheel
rm -rf "$VENV_WHEEL"

# ---------------------------------------------------------------------------------------
VENV_SDIST="$WORK/venv-sdist"
make_venv "$VENV_SDIST"
echo "== check_dist: [sdist] pip install $(basename "$SDIST") (builds with cargo)"
# The build runs in pip's isolated build environment; its cargo target folder is kept
# under target/ so that repeated runs reuse the compiled dependencies.
CARGO_TARGET_DIR="$ROOT/target/check-dist-sdist" \
    "$VENV_SDIST/bin/python" -m pip install --quiet --force-reinstall --no-deps "$SDIST"
install_extras "$VENV_SDIST"
run_tests "$VENV_SDIST" sdist

echo "check_dist: OK: wheel $WHEEL_NAME and sdist $(basename "$SDIST") install and pass" \
    "the tests ($((SECONDS - START)) s)"
