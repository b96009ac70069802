"""What the GUI's background jobs do with the library: plain functions that touch no Qt object.

Each runs on a pool thread (see workers.Runner). The core is imported inside them, so torch
and open_clip load on a worker while the window is already on screen.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

from clipphotos.gui.model_choices import ModelRequest, short_name
from clipphotos.gui.search_bar import Query

if TYPE_CHECKING:
    from clipphotos.catalog import PhotoRecord
    from clipphotos.library import Library, SearchResult

SEARCH_LIMIT = 300
PROGRESS_INTERVAL = 0.1      # seconds between progress signals (the indexer reports every photo)
DEFAULT_THUMBNAIL_SIZE = 176

# Keys of the catalog's settings table that only the app uses.
KEY_MODEL = "gui.model"
KEY_DEVICE = "gui.device"
KEY_PRECISION = "gui.precision"
KEY_THUMBNAILS = "gui.thumbnail_size"


@dataclass(frozen=True)
class AppSettings:
    """What the settings dialog edits; stored in the catalog's settings table."""

    model: ModelRequest | None = None
    device: str = "auto"
    thumbnail_size: int = DEFAULT_THUMBNAIL_SIZE
    excluded: tuple[str, ...] = ()
    precision: str = "auto"


@dataclass
class Browse:
    """The photos to browse (newest first, filtered) and the library's status."""

    photos: list[PhotoRecord]
    status: dict
    seconds: float = 0.0         # what reading it took (a million photos take a while)


@dataclass
class Opened:
    library: Library
    settings: AppSettings
    browse: Browse
    notes: list[str] = field(default_factory=list)


def open_library(root: str | None, model: ModelRequest | None, device: str | None,
                 precision: str | None = None) -> Opened:
    """The library with the model the command line, else the user's settings, else the library ask for."""
    from clipphotos.library import Library
    lib = Library(root)
    get = lib.catalog.get_setting
    wanted = model or ModelRequest.from_json(get(KEY_MODEL))
    device = device or get(KEY_DEVICE) or "auto"
    lib.requested_model = wanted.spec() if wanted is not None else None
    lib.requested_device = device if device != "auto" else None
    precision = precision or get(KEY_PRECISION) or "auto"
    lib.requested_precision = precision if precision != "auto" else None   # auto: $CLIPPHOTOS_PRECISION, else auto
    excluded = tuple(p for p in (get("excluded_folders") or "").split("\n") if p)
    current = wanted or ModelRequest.from_json(get("model"))
    try:
        size = int(get(KEY_THUMBNAILS) or DEFAULT_THUMBNAIL_SIZE)
    except ValueError:
        size = DEFAULT_THUMBNAIL_SIZE
    settings = AppSettings(current, device, size, excluded, precision)
    return Opened(lib, settings, browse(lib, Query()))


def browse(lib: Library, query: Query) -> Browse:
    """Every photo (newest first) within the query's folder and dates."""
    started = time.monotonic()
    photos = lib.catalog.iter_photos()
    if query.folder:
        prefix = query.folder.rstrip(os.sep) + os.sep
        photos = [p for p in photos if p.path.startswith(prefix)]
    if query.since is not None or query.until is not None:
        photos = [p for p in photos if _within(p.taken_at, query.since, query.until)]
    return Browse(photos, lib.status(), time.monotonic() - started)


def _within(taken_at: str | None, since: date | None, until: date | None) -> bool:
    if not taken_at:
        return False
    day = taken_at[:10]
    return (since is None or day >= since.isoformat()) and (until is None or day <= until.isoformat())


def load_model(lib: Library) -> tuple[str, str]:
    """Load the model and its vector index; returns its short name and details (device, precision)."""
    _ = lib.index
    lib.embedder.warm_up()
    loaded = lib.embedder.loaded
    return f"{short_name(loaded.spec.name)} · {loaded.device_type.upper()}", "; ".join(
        [loaded.spec.describe(), *loaded.notes])


def search(lib: Library, query: Query, still_wanted: Callable[[], bool]) -> list[SearchResult] | None:
    """The ranked results, or None when a newer query made this one pointless before it started."""
    if not still_wanted():
        return None
    return lib.search(query.text or None, image=query.image, negative=query.negative, folder=query.folder,
                      since=query.since, until=query.until, limit=SEARCH_LIMIT)


def throttled(progress: Callable[[Any], None]) -> Callable[[Any], None]:
    """Pass on Progress a few times a second (the indexer reports every photo), phase changes always."""
    last = [0.0, ""]

    def report(p: Any) -> None:
        now = time.monotonic()
        if p.phase != last[1] or now - last[0] >= PROGRESS_INTERVAL or p.done == p.total:
            last[0], last[1] = now, p.phase
            progress(p)
    return report


def store_settings(lib: Library, settings: AppSettings) -> None:
    lib.catalog.set_setting(KEY_MODEL, settings.model.to_json() if settings.model is not None else None)
    lib.catalog.set_setting(KEY_DEVICE, settings.device)
    lib.catalog.set_setting(KEY_PRECISION, settings.precision)
    lib.catalog.set_setting(KEY_THUMBNAILS, str(settings.thumbnail_size))
    lib.set_excluded_folders(settings.excluded)
