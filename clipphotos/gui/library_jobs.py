"""What the GUI's background jobs do with the library: plain functions that touch no Qt object.

Each runs on a pool thread (see workers.Runner). The core is imported inside them, so torch
and open_clip load on a worker while the window is already on screen.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from clipphotos.model_choices import ModelRequest, short_name
from clipphotos.settings import DEFAULT_THUMBNAIL_SIZE
from clipphotos.gui.search_bar import Query

if TYPE_CHECKING:
    from clipphotos.library import Library, PhotoRecord, RebuiltCatalog, SearchAnswer

SEARCH_LIMIT = 300
PROGRESS_INTERVAL = 0.1      # seconds between progress signals (the indexer reports every photo)


@dataclass(frozen=True)
class AppSettings:
    """What the settings dialog edits; stored in the library's settings (clipphotos.settings)."""

    model: ModelRequest | None = None
    device: str = "auto"
    thumbnail_size: int = DEFAULT_THUMBNAIL_SIZE
    excluded: tuple[str, ...] = ()
    precision: str = "auto"
    read_text: bool = True       # the words in photos are read (Library.text_enabled)


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
    stored = lib.settings
    wanted = model or ModelRequest.from_json(stored.app_model_json)
    device = device or stored.app_device
    lib.requested_model = wanted.spec() if wanted is not None else None
    lib.requested_device = device if device != "auto" else None
    precision = precision or stored.app_precision
    lib.requested_precision = precision if precision != "auto" else None   # auto: $CLIPPHOTOS_PRECISION, else auto
    current = wanted or ModelRequest.from_json(stored.model_json)
    settings = AppSettings(current, device, stored.thumbnail_size, stored.excluded_folders, precision,
                           lib.text_enabled)
    return Opened(lib, settings, browse(lib, Query()))


def rebuild_catalog(damaged: Library | None, root: str | None, model: ModelRequest | None, device: str | None,
                    progress: Callable[[Any], None]) -> RebuiltCatalog:
    """A fresh catalog in place of a damaged one (closed first, if the app had it open), what could
    be read of it carried over and the folders indexed again (clipphotos.library.rebuild_catalog);
    `progress` hears of the indexing."""
    from clipphotos.library import rebuild_catalog
    if damaged is not None:
        damaged.close()
    return rebuild_catalog(root, model=model.spec(device) if model is not None else None,
                           device=device if device != "auto" else None, on_progress=throttled(progress))


def browse(lib: Library, query: Query) -> Browse:
    """Every photo (newest first) within the query's folder, dates and tag."""
    started = time.monotonic()
    photos = lib.browse(folder=query.folder, since=query.since, until=query.until, tag=query.tag)
    return Browse(photos, lib.status(), time.monotonic() - started)


@dataclass(frozen=True)
class ModelReady:
    """The loaded model, as the window shows it."""

    title: str                  # short name and device, for the status bar
    details: str                # which weights, and how it runs here and why (its tooltip)
    speed_here: float | None    # images/s its image encoder reached on this computer at its first load


def load_model(lib: Library) -> ModelReady:
    """Load the model and its vector index; returns what the window says of it."""
    loaded = lib.warm_up()
    speed = lib.inference()[3].get("images_per_second")
    return ModelReady(f"{short_name(loaded.spec.name)} · {loaded.device_type.upper()}",
                      "; ".join([loaded.spec.describe(), *loaded.notes]), speed)


def search(lib: Library, query: Query, still_wanted: Callable[[], bool]) -> SearchAnswer | None:
    """The results, matches first, or None when a newer query made this one pointless before it started."""
    if not still_wanted():
        return None
    return lib.find(query.text or None, image=query.image, negative=query.negative, folder=query.folder,
                    since=query.since, until=query.until, tag=query.tag, limit=SEARCH_LIMIT)


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
    stored = lib.settings
    stored.app_model_json = settings.model.to_json() if settings.model is not None else None
    stored.app_device = settings.device
    stored.app_precision = settings.precision
    stored.thumbnail_size = settings.thumbnail_size
    lib.set_excluded_folders(settings.excluded)
    lib.set_text_enabled(settings.read_text)
