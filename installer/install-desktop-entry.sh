#!/usr/bin/env bash
# Put ClipPhotos in the Linux desktop's application menu (for this user), or take it out again.
#
#   ./install-desktop-entry.sh [--exec PATH] [--data-home DIR]     # install
#   ./install-desktop-entry.sh --uninstall [--data-home DIR]       # remove
#
# Installs into ${XDG_DATA_HOME:-~/.local/share}:
#   applications/clipphotos.desktop              (Exec= the clipphotos found below)
#   icons/hicolor/<N>x<N>/apps/clipphotos.png     (16 … 512) and icons/hicolor/scalable/apps/clipphotos.svg
#   metainfo/io.github.clipphotos.ClipPhotos.metainfo.xml   (software centres read it)
#
# The program it starts: --exec PATH; else the `clipphotos` beside this script (the frozen
# bundle, where this script is copied); else the one on PATH (pip install). Works from the
# bundle (resources in _internal/resources) and from a source checkout (installer/).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DATA_HOME="${XDG_DATA_HOME:-$HOME/.local/share}"
EXEC=""
UNINSTALL=0
while [ $# -gt 0 ]; do
    case "$1" in
        --exec) EXEC="$2"; shift 2 ;;
        --data-home) DATA_HOME="$2"; shift 2 ;;
        --uninstall) UNINSTALL=1; shift ;;
        -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
        *) echo "install-desktop-entry.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

APPS="$DATA_HOME/applications"
HICOLOR="$DATA_HOME/icons/hicolor"
METAINFO="$DATA_HOME/metainfo"
SIZES="16 24 32 48 64 128 256 512"
METAINFO_FILE=io.github.clipphotos.ClipPhotos.metainfo.xml

refresh() {
    # Menus and icons pick the change up sooner; none of this is required. Caches are only
    # brought up to date where they already exist (a stale new one would hide later icons).
    if [ -f "$APPS/mimeinfo.cache" ] && command -v update-desktop-database >/dev/null; then
        update-desktop-database -q "$APPS" 2>/dev/null || true
    fi
    if [ -f "$HICOLOR/icon-theme.cache" ] && command -v gtk-update-icon-cache >/dev/null; then
        gtk-update-icon-cache -q -t "$HICOLOR" 2>/dev/null || true
    fi
    command -v xdg-desktop-menu >/dev/null && xdg-desktop-menu forceupdate 2>/dev/null || true
}

if [ "$UNINSTALL" = 1 ]; then
    rm -f "$APPS/clipphotos.desktop" "$METAINFO/$METAINFO_FILE" "$HICOLOR/scalable/apps/clipphotos.svg"
    for n in $SIZES; do rm -f "$HICOLOR/${n}x${n}/apps/clipphotos.png"; done
    refresh
    echo "Removed the ClipPhotos menu entry and icons from $DATA_HOME."
    exit 0
fi

for candidate in "$HERE/_internal/resources" "$HERE/../resources"; do
    if [ -f "$candidate/clipphotos.desktop" ]; then RES="$(cd "$candidate" && pwd)"; break; fi
done
if [ -z "${RES:-}" ]; then
    echo "install-desktop-entry.sh: no resources/clipphotos.desktop beside this script" >&2
    exit 1
fi

if [ -z "$EXEC" ]; then
    if [ -x "$HERE/clipphotos" ]; then EXEC="$HERE/clipphotos"
    elif command -v clipphotos >/dev/null; then EXEC="$(command -v clipphotos)"
    else
        echo "install-desktop-entry.sh: no clipphotos program found; say which with --exec PATH" >&2
        exit 1
    fi
fi
EXEC="$(cd "$(dirname "$EXEC")" && pwd)/$(basename "$EXEC")"
[ -x "$EXEC" ] || { echo "install-desktop-entry.sh: $EXEC is not an executable" >&2; exit 1; }

# Desktop Entry Specification: an Exec argument with spaces or specials is double-quoted,
# with ", `, $ and \ escaped inside; and in the file every \ is written twice.
quoted="$(printf '%s' "$EXEC" | sed -e 's/%/%%/g')"   # a literal % is written %%
case "$EXEC" in
    *[[:space:]\"\'\`\$\\\<\>\~\|\&\;\*\?\#\(\)]*)
        quoted="$(printf '%s' "$quoted" | sed -e 's/[\\"`$]/\\&/g')"
        quoted="\"$quoted\""
        quoted="$(printf '%s' "$quoted" | sed -e 's/\\/\\\\/g')" ;;
esac

mkdir -p "$APPS" "$HICOLOR/scalable/apps" "$METAINFO"
tmp="$(mktemp "$APPS/.clipphotos.desktop.XXXXXX")"
while IFS= read -r line || [ -n "$line" ]; do
    case "$line" in
        Exec=*) printf 'Exec=%s\n' "$quoted" ;;
        TryExec=*) printf 'TryExec=%s\n' "$(printf '%s' "$EXEC" | sed -e 's/\\/\\\\/g')" ;;
        *) printf '%s\n' "$line" ;;
    esac
done < "$RES/clipphotos.desktop" > "$tmp"
chmod 644 "$tmp"
mv "$tmp" "$APPS/clipphotos.desktop"

for n in $SIZES; do
    if [ -f "$RES/icons/app/clipphotos-$n.png" ]; then
        mkdir -p "$HICOLOR/${n}x${n}/apps"
        cp "$RES/icons/app/clipphotos-$n.png" "$HICOLOR/${n}x${n}/apps/clipphotos.png"
    fi
done
cp "$RES/clipphotos.svg" "$HICOLOR/scalable/apps/clipphotos.svg"
if [ -f "$RES/$METAINFO_FILE" ]; then cp "$RES/$METAINFO_FILE" "$METAINFO/$METAINFO_FILE"; fi
refresh
echo "ClipPhotos is in the application menu (starts $EXEC); remove it with: $0 --uninstall"
