#!/usr/bin/env bash
# Build the frozen app (installer/build.sh) and try it as a user would. Slow (a build takes
# tens of minutes) and large (~1 GB): run by hand before a release, not in CI.
#
#   bash installer/smoke.sh [--no-build] [build.sh options: --venv DIR --out DIR --torch-wheel FILE ...]
#
# Checks, each PASS/FAIL/SKIP, then "N passed, N failed":
#   --version and --help; doctor (human and --json: six checks, each with a fix when not ok);
#   demo --no-gui (the bundled toy model, drawing, indexing, searching) and a search of it;
#   indexing real DNGs (RAW decoding in spawned workers: the frozen exe started again), and a
#   damaged one refused with LibRaw's reason rather than "could not be started";
#   the window shown offscreen (and under Xvfb with the xcb plugin when xvfb-run exists);
#   the desktop entry installed from the bundle, validated and removed; no CUDA libraries.
# Nothing outside a temporary folder is touched (HOME, XDG_* and the hub cache point into it),
# and the model hub is never contacted (HF_HUB_OFFLINE=1).
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT=/tmp/clipphotos-build
BUILD=1
BUILD_ARGS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --no-build) BUILD=0; shift ;;
        --out) OUT="$2"; BUILD_ARGS+=("$1" "$2"); shift 2 ;;
        --venv|--torch-wheel) BUILD_ARGS+=("$1" "$2"); shift 2 ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        *) BUILD_ARGS+=("$1"); shift ;;
    esac
done

if [ "$BUILD" = 1 ]; then
    bash "$REPO/installer/build.sh" "${BUILD_ARGS[@]}" || { echo "build failed"; exit 1; }
fi
DIST="$OUT/dist/ClipPhotos"
APP="$DIST/clipphotos"
[ -x "$APP" ] || { echo "no frozen app at $APP (build first)"; exit 1; }
VERSION="$(sed -nE 's/^__version__ = "(.+)"/\1/p' "$REPO/clipphotos/__init__.py")"

T="$(mktemp -d /tmp/clipphotos-smoke.XXXXXX)"
export HOME="$T/home" XDG_DATA_HOME="$T/home/.local/share" XDG_CONFIG_HOME="$T/home/.config" \
       XDG_CACHE_HOME="$T/home/.cache" HF_HOME="$T/home/.cache/huggingface" HF_HUB_OFFLINE=1 \
       CLIPPHOTOS_LIBRARY="$T/library"
mkdir -p "$HOME"
PASSED=0; FAILED=0; SKIPPED=0
pass() { PASSED=$((PASSED + 1)); echo "PASS  $1"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL  $1"; [ -f "$T/out" ] && tail -n 25 "$T/out" | sed 's/^/      /'; }
skip() { SKIPPED=$((SKIPPED + 1)); echo "SKIP  $1"; }
# run NAME COMMAND...: output to $T/out, seconds to $SECS, exit code returned
run() {
    local start=$SECONDS
    "$@" > "$T/out" 2>&1
    local rc=$?
    SECS=$((SECONDS - start))
    return $rc
}
json() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); $1" "$T/stdout"; }

echo "Frozen app: $APP ($(du -sh "$DIST" | cut -f1)); scratch: $T"

# -- the CLI --------------------------------------------------------------------------------
if run "$APP" --version && grep -qx "clipphotos $VERSION" "$T/out"; then pass "--version: $(cat "$T/out") (${SECS} s)"
else fail "--version"; fi

if run "$APP" --help && grep -q "doctor" "$T/out"; then pass "--help (${SECS} s)"; else fail "--help"; fi

run "$APP" doctor; rc=$?
if [ $rc -le 1 ] && grep -q "device" "$T/out" && grep -q "catalog" "$T/out"; then
    pass "doctor (exit $rc, ${SECS} s):"; sed 's/^/      /' "$T/out"
else fail "doctor (exit $rc)"; fi

"$APP" doctor --json > "$T/stdout" 2> "$T/out"; rc=$?
if [ $rc -le 1 ] && json 'c=d["checks"]; assert len(c) == 6, c; assert all(x["ok"] or x["fix"] for x in c), c' 2>> "$T/out"
then pass "doctor --json: six checks, a fix for each that is not ok"
else fail "doctor --json (exit $rc)"; fi

# -- the demo: bundled model, drawing, indexing, searching -----------------------------------
MODEL="$DIST/_internal/clipphotos/models/shapes-clip"
if [ -f "$MODEL/config.json" ]; then
    start=$SECONDS
    "$APP" demo --no-gui --json "$T/demo" > "$T/stdout" 2> "$T/out"; rc=$?
    if [ $rc = 0 ] && json 'assert d["photos"] > 200, d["photos"]; print(sum(q["right"] for q in d["queries"]), "of", sum(len(q["results"]) for q in d["queries"]), "demo results right")' >> "$T/out" 2>&1
    then pass "demo --no-gui: $(tail -n 1 "$T/out") ($((SECONDS - start)) s)"
    else fail "demo --no-gui (exit $rc)"; fi
    "$APP" --library "$T/demo" search "a red star" --limit 3 --json > "$T/stdout" 2> "$T/out"; rc=$?
    if [ $rc = 0 ] && json 'assert len(d["results"]) == 3' 2>> "$T/out"; then pass "search the demo library"
    else fail "search the demo library (exit $rc)"; fi
else
    skip "demo: this bundle has no toy model (built with CLIPPHOTOS_ALLOW_NO_TOY_MODEL=1)"
fi

# -- RAW files: decoded in worker processes, i.e. the frozen exe spawned again ---------------
mkdir -p "$T/raw"
printf 'II*\0\010\0\0\0this is no camera file' > "$T/raw/damaged.dng"
DNG_PY=""
for py in "$REPO/.venv/bin/python" python3; do
    if "$py" -c "import tifffile, imagecodecs, pytest, clipphotos" 2>/dev/null; then DNG_PY="$py"; break; fi
done
if [ -n "$DNG_PY" ]; then
    # The test suite's DNG writer: a JPEG-previewed DNG, and one with no preview (demosaiced).
    "$DNG_PY" - "$REPO/tests" "$T/raw" <<'EOF'
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
import test_raw  # noqa: E402
out = Path(sys.argv[2])
(out / "preview.dng").write_bytes(test_raw.shape_dng("red", "star", 1))
(out / "mosaic-only.dng").write_bytes(test_raw.shape_dng("blue", "circle", 2, preview=None))
EOF
fi
if [ -f "$MODEL/config.json" ]; then
    start=$SECONDS
    "$APP" --library "$T/rawlib" --model "$MODEL/config.json" --weights "$MODEL/shapes-clip.safetensors" \
        index "$T/raw" --json > "$T/stdout" 2> "$T/out"; rc=$?
    if [ $rc = 0 ] && json '
skipped = {s["path"].rsplit("/", 1)[-1]: s["reason"] for s in d["skipped"]}
print("indexed", d["indexed"], "skipped", skipped)
reason = skipped.get("damaged.dng", "")
assert reason and "could not be started" not in reason and "crashed" not in reason, reason
for name in ("preview.dng", "mosaic-only.dng"):
    assert name not in skipped, skipped
' >> "$T/out" 2>&1 && { [ -z "$DNG_PY" ] || json 'assert d["indexed"] == 2, d["indexed"]' 2>> "$T/out"; }
    then pass "RAW in frozen worker processes: $(tail -n 1 "$T/out") ($((SECONDS - start)) s)"
    else fail "RAW in frozen worker processes (exit $rc)"; fi
    [ -n "$DNG_PY" ] || skip "real DNGs: no Python with tifffile + imagecodecs (pip install -e '.[test]') to write them"
else
    skip "RAW: this bundle has no toy model to index with"
fi

# -- the window -----------------------------------------------------------------------------
LIB="$T/library"; [ -d "$T/demo" ] && LIB="$T/demo"
start=$SECONDS
QT_QPA_PLATFORM=offscreen CLIPPHOTOS_EXIT_WHEN_SHOWN=1 timeout 120 "$APP" --library "$LIB" > "$T/out" 2>&1; rc=$?
if [ $rc = 0 ] && grep -q "window shown at" "$T/out"; then pass "window shown offscreen and closed ($((SECONDS - start)) s)"
else fail "window offscreen (exit $rc)"; fi
if command -v xvfb-run >/dev/null; then
    start=$SECONDS
    QT_QPA_PLATFORM=xcb CLIPPHOTOS_EXIT_WHEN_SHOWN=1 timeout 120 xvfb-run -a "$APP" --library "$LIB" > "$T/out" 2>&1; rc=$?
    if [ $rc = 0 ] && grep -q "window shown at" "$T/out"; then pass "window shown on X11 (Xvfb, xcb plugin) ($((SECONDS - start)) s)"
    else fail "window on X11 (exit $rc)"; fi
else
    skip "window on X11: no xvfb-run (apt-get install xvfb)"
fi

# -- desktop integration --------------------------------------------------------------------
if run bash "$DIST/install-desktop-entry.sh" && [ -f "$XDG_DATA_HOME/applications/clipphotos.desktop" ] \
   && grep -qx "Exec=$APP" "$XDG_DATA_HOME/applications/clipphotos.desktop" \
   && [ -f "$XDG_DATA_HOME/icons/hicolor/256x256/apps/clipphotos.png" ]; then
    if command -v desktop-file-validate >/dev/null && ! desktop-file-validate "$XDG_DATA_HOME/applications/clipphotos.desktop" >> "$T/out" 2>&1; then
        fail "installed .desktop entry does not validate"
    else pass "desktop entry and icons installed from the bundle"; fi
else fail "install-desktop-entry.sh"; fi
if run bash "$DIST/install-desktop-entry.sh" --uninstall && [ ! -e "$XDG_DATA_HOME/applications/clipphotos.desktop" ] \
   && [ -z "$(find "$XDG_DATA_HOME/icons" -name 'clipphotos*' 2>/dev/null)" ]; then pass "desktop entry removed"
else fail "install-desktop-entry.sh --uninstall"; fi

# -- what is in the bundle --------------------------------------------------------------------
# (torchvision's wheel vendors a small libcudart/libnvjpeg of its own, unused on the CPU: not counted)
cuda="$(find "$DIST" \( -name 'libtorch_cuda*' -o -name 'libcublas*' -o -name 'libcudnn*' -o -name 'libnccl*' \) | head -3)"
if [ -z "$cuda" ]; then pass "no CUDA libraries in the bundle (a CPU build)"; else echo "NOTE  a CUDA bundle: $cuda"; fi
echo "Bundle: $(du -sh "$DIST" | cut -f1); largest parts:"
du -s "$DIST"/_internal/* 2>/dev/null | sort -rn | head -8 | awk '{printf "      %6.0f MB  %s\n", $1 / 1024, $2}'

rm -rf "$T"
echo "$PASSED passed, $FAILED failed, $SKIPPED skipped"
[ "$FAILED" = 0 ]
