"""The library's settings: every key named once, each read and written through a typed accessor.

Settings live in the catalog (a key/value table), so they travel with the library and are
covered by its backups. The core's own (the library's model, excluded folders, index checksums)
and the app's preferences (the model, device, precision and thumbnail size the user picked)
are kept apart by their keys' prefixes.
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the app reads the defaults here before anything heavy is imported
    from clipphotos.catalog import Catalog

MODEL = "model"                       # the ModelSpec (JSON) the whole library is indexed with
MODEL_KEY = "model.key"               # that model's identity (name + weights fingerprint)
EXCLUDED_FOLDERS = "excluded_folders"  # one path a line
WATCH_STATE = "watch.state"           # what a running watcher published (watch_state.py)
READ_TEXT = "text.read"               # "off" when the words in photos are not read (text_pass.py)
APP_MODEL = "gui.model"               # the model the user picked in the app (a ModelRequest's JSON)
APP_DEVICE = "gui.device"
APP_PRECISION = "gui.precision"
APP_THUMBNAIL_SIZE = "gui.thumbnail_size"
DEFAULT_THUMBNAIL_SIZE = 176


class Settings:
    """Typed access to one library's settings."""

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog

    def _get(self, key: str) -> str | None:
        return self._catalog.get_setting(key)

    def _set(self, key: str, value: str | None) -> None:
        self._catalog.set_setting(key, value)

    # -- the core's -----------------------------------------------------------------------

    @property
    def model_json(self) -> str | None:
        return self._get(MODEL)

    def set_model(self, spec_json: str, key: str) -> None:
        """Remember the model the library is indexed with, and its identity."""
        self._set(MODEL, spec_json)
        self._set(MODEL_KEY, key)

    @property
    def model_key(self) -> str | None:
        return self._get(MODEL_KEY)

    @property
    def excluded_folders(self) -> tuple[str, ...]:
        return tuple(p for p in (self._get(EXCLUDED_FOLDERS) or "").split("\n") if p)

    @excluded_folders.setter
    def excluded_folders(self, paths: Iterable[str | os.PathLike[str]]) -> None:
        self._set(EXCLUDED_FOLDERS, "\n".join(os.fspath(p) for p in paths) or None)

    def index_checksum(self, model_id: int) -> str | None:
        return self._get(f"index.{model_id}.checksum")

    def set_index_checksum(self, model_id: int, checksum: str) -> None:
        self._set(f"index.{model_id}.checksum", checksum)

    def index_stamp(self, model_id: int) -> tuple[list[int], int] | None:
        """(the saved index files' sizes and times, the catalog's count of vector changes it
        holds), as recorded at its last save (vector_index.stamp, Catalog.vector_changes)."""
        raw = self._get(f"index.{model_id}.stamp")
        if not raw:
            return None
        try:
            saved = json.loads(raw)
            return [int(v) for v in saved["files"]], int(saved["vector_changes"])
        except (ValueError, KeyError, TypeError):
            return None

    def set_index_stamp(self, model_id: int, files: list[int], vector_changes: int) -> None:
        self._set(f"index.{model_id}.stamp", json.dumps({"files": files, "vector_changes": vector_changes}))

    @property
    def read_text(self) -> bool:
        return self._get(READ_TEXT) != "off"

    @read_text.setter
    def read_text(self, on: bool) -> None:
        self._set(READ_TEXT, None if on else "off")

    # -- the app's ------------------------------------------------------------------------

    @property
    def app_model_json(self) -> str | None:
        return self._get(APP_MODEL)

    @app_model_json.setter
    def app_model_json(self, value: str | None) -> None:
        self._set(APP_MODEL, value)

    @property
    def app_device(self) -> str:
        return self._get(APP_DEVICE) or "auto"

    @app_device.setter
    def app_device(self, value: str) -> None:
        self._set(APP_DEVICE, value)

    @property
    def app_precision(self) -> str:
        return self._get(APP_PRECISION) or "auto"

    @app_precision.setter
    def app_precision(self, value: str) -> None:
        self._set(APP_PRECISION, value)

    @property
    def thumbnail_size(self) -> int:
        try:
            return int(self._get(APP_THUMBNAIL_SIZE) or DEFAULT_THUMBNAIL_SIZE)
        except ValueError:
            return DEFAULT_THUMBNAIL_SIZE

    @thumbnail_size.setter
    def thumbnail_size(self, value: int) -> None:
        self._set(APP_THUMBNAIL_SIZE, str(int(value)))
