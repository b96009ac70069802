#!/usr/bin/env bash
# Build ClipPhotos as one self-contained folder with PyInstaller (installer/clipphotos.spec).
#
#   bash installer/build.sh [--venv DIR] [--out DIR] [--torch-wheel FILE]... [--cuda] [--no-install] [--tar]
#
# Linux and macOS (Windows: the same steps by hand, see installer/README.md). Nothing is
# written into the checkout: the build venv, PyInstaller's work folder and the result go
# under --out (default /tmp/clipphotos-build):
#   OUT/dist/ClipPhotos/clipphotos        the app (Linux; macOS: OUT/dist/ClipPhotos.app)
#
# The build venv gets PyInstaller, the project's dependencies (read from pyproject.toml) and,
# on Linux, the CPU-only torch wheels, so the bundle carries no CUDA libraries:
#   --torch-wheel FILE   CPU wheels already on disk, when their index cannot be reached: torch's
#                        and torchvision's (give it twice; PyPI's torchvision is built for CUDA
#                        torch and does not import beside a CPU torch)
#   --cuda               take torch from PyPI as it comes (CUDA on Linux: several GB more)
#   --no-install         use the venv as it is (skips the installs)
# The package itself is frozen from this checkout (the spec puts it first on the path).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT=/tmp/clipphotos-build
VENV=""
TORCH_WHEELS=()
CUDA=0
INSTALL=1
TAR=0
while [ $# -gt 0 ]; do
    case "$1" in
        --venv) VENV="$2"; shift 2 ;;
        --out) OUT="$2"; shift 2 ;;
        --torch-wheel) TORCH_WHEELS+=("$2"); shift 2 ;;
        --cuda) CUDA=1; shift ;;
        --no-install) INSTALL=0; shift ;;
        --tar) TAR=1; shift ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "build.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
VENV="${VENV:-$OUT/venv}"
case "$OUT" in "$REPO"|"$REPO"/*) echo "build.sh: build outside the checkout (--out)" >&2; exit 2 ;; esac
mkdir -p "$OUT"
PY="$VENV/bin/python"
NICE="nice -n 19"   # a build takes every core it can get for a long while

if [ "$INSTALL" = 1 ]; then
    [ -x "$PY" ] || python3 -m venv "$VENV"
    $NICE "$PY" -m pip install --upgrade pip pyinstaller
    if [ "$(uname -s)" = Darwin ] || [ "$CUDA" = 1 ]; then
        TORCH=(torch torchvision)                       # macOS wheels are CPU + MPS already
    elif [ ${#TORCH_WHEELS[@]} -gt 0 ]; then
        TORCH=("${TORCH_WHEELS[@]}")
    else
        TORCH=(torch torchvision --index-url https://download.pytorch.org/whl/cpu)
    fi
    $NICE "$PY" -m pip install "${TORCH[@]}"
    # The project's dependencies (not the project: the spec freezes the checkout itself, and
    # `pip install .` would build inside the checkout).
    "$PY" - "$REPO/pyproject.toml" > "$OUT/requirements.txt" <<'EOF'
import sys, tomllib
print("\n".join(tomllib.load(open(sys.argv[1], "rb"))["project"]["dependencies"]))
EOF
    # keep the torch just installed: pin it so the requirements do not swap it for PyPI's
    pins="$("$PY" -c 'from importlib.metadata import version; [print(f"{d}=={version(d)}") for d in ("torch", "torchvision")]')"
    printf '%s\n' "$pins" > "$OUT/constraints.txt"
    $NICE "$PY" -m pip install -r "$OUT/requirements.txt" -c "$OUT/constraints.txt"
fi

"$PY" -c 'import PyInstaller, torch; print(f"PyInstaller {PyInstaller.__version__}, torch {torch.__version__} (CUDA: {torch.version.cuda})")'
if ! "$PY" -c 'import torchvision, open_clip' 2> "$OUT/import-check.log"; then
    tail -n 3 "$OUT/import-check.log" >&2
    echo "build.sh: torchvision does not import in $VENV; its build must match torch's (CPU with CPU:" \
         "both from the CPU index, or both wheels with --torch-wheel)" >&2
    exit 1
fi
start=$(date +%s)
(cd "$OUT" && $NICE "$PY" -m PyInstaller --noconfirm --clean --log-level WARN \
    --distpath "$OUT/dist" --workpath "$OUT/work" "$REPO/installer/clipphotos.spec")
APP="$OUT/dist/ClipPhotos"
# The Linux desktop integration travels with the bundle: ./install-desktop-entry.sh in it.
cp "$REPO/installer/install-desktop-entry.sh" "$APP/"
echo "Built $APP in $(( $(date +%s) - start )) s: $(du -sh "$APP" | cut -f1)"

if [ "$TAR" = 1 ]; then
    version="$("$PY" -c "import re,sys; print(re.search(r'__version__ = \"(.+)\"', open(sys.argv[1]).read())[1])" "$REPO/clipphotos/__init__.py")"
    name="ClipPhotos-$version-$(uname -s | tr '[:upper:]' '[:lower:]')-$(uname -m).tar.gz"
    $NICE tar -C "$OUT/dist" -czf "$OUT/$name" ClipPhotos
    echo "Packed $OUT/$name: $(du -sh "$OUT/$name" | cut -f1)"
fi
