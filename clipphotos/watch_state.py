"""What a running watcher tells other processes: its folders, queue and heartbeat.

The watcher publishes a snapshot in the catalog's settings; `status`, `index` and the app read
it to say what runs elsewhere. It lives apart from the watcher so that the library facade can
read it without importing the watch engine (which itself drives a `Library`).
"""
from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass

from clipphotos.catalog import Catalog
from clipphotos.settings import WATCH_STATE as STATE_KEY

EVENTS, POLLING = "events", "polling"
# The state is published when it changes, and at least this often as a heartbeat...
HEARTBEAT_SECONDS = 5.0
# ...so a published state older than this is a watcher that died without saying so.
STALE_SECONDS = 15.0


@dataclass(frozen=True)
class WatchedFolder:
    folder: str
    mode: str                           # EVENTS or POLLING
    reason: str = ""                    # why it is polled

    def to_json(self) -> dict:
        return {"folder": self.folder, "mode": self.mode}


@dataclass(frozen=True)
class WatchState:
    """A snapshot of the engine, as `status` shows it."""

    queued: int
    watching: list[WatchedFolder]
    indexing: bool
    paused: bool

    def to_json(self) -> dict:
        return {"queued": self.queued, "watching": [w.to_json() for w in self.watching],
                "indexing": self.indexing, "paused": self.paused}


def live_watcher(catalog: Catalog) -> dict | None:
    """The state a running watcher published, or None if none runs (stale heartbeat, dead pid)."""
    raw = catalog.get_setting(STATE_KEY)
    if not raw:
        return None
    try:
        state = json.loads(raw)
        fresh = time.time() - float(state["heartbeat"]) < STALE_SECONDS
        here = state.get("host") == socket.gethostname()
        alive = fresh and (not here or _pid_alive(int(state["pid"])))
    except (ValueError, KeyError, TypeError):
        return None
    return state if alive else None


def watch_status(catalog: Catalog) -> dict:
    """`{"queued": n, "watching": [{"folder", "mode"}]}` of the running watcher (nothing if none)."""
    state = live_watcher(catalog)
    if state is None:
        return {"queued": 0, "watching": []}
    return {"queued": int(state.get("queued", 0)),
            "watching": [{"folder": w["folder"], "mode": w["mode"]} for w in state.get("watching", [])]}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def publish_state(catalog: Catalog, state: dict) -> None:
    """Write the engine's snapshot with who wrote it and when (the heartbeat)."""
    catalog.set_setting(STATE_KEY, json.dumps({**state, "pid": os.getpid(), "host": socket.gethostname(),
                                               "heartbeat": time.time()}))


def clear_state(catalog: Catalog) -> None:
    """The watcher ended: nothing runs any more."""
    catalog.set_setting(STATE_KEY, None)
