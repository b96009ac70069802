"""The `clipphotos` command: index, search, status, watch, … — or the desktop app with no command.

Every command prints for people by default and, with `--json`, one JSON document on stdout
(progress and messages always go to stderr, so the JSON can be piped). Global options may be
given before or after the command.
"""
from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import signal
import sqlite3
import sys
import time
from pathlib import Path
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

from clipphotos import __version__

if TYPE_CHECKING:  # the indexer pulls in torch: not on the desktop app's way to its window
    from clipphotos.library import IndexReport, Progress

EXIT_USAGE = 2
EXIT_BUSY = 3
EXIT_FAULT = 4   # the library or the disk failed (damaged catalog, full disk, read-only, permissions)
EXIT_PIPE = 141  # the reader of the output went away (`| head`): as a tool killed by SIGPIPE


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a count of results: give 1 or more")
    return value


def _global_options(parser: argparse.ArgumentParser, suppress: bool) -> None:
    """Options every command shares; on subcommands they default to 'not given' so either place works."""
    d = (lambda v: argparse.SUPPRESS) if suppress else (lambda v: v)
    g = parser.add_argument_group("library and model")
    g.add_argument("--library", metavar="DIR", default=d(None),
                   help="library folder (default: $CLIPPHOTOS_LIBRARY or the user data folder)")
    g.add_argument("--model", metavar="NAME_OR_CONFIG", default=d(None),
                   help="OpenCLIP model name, or the path of an OpenCLIP model-config JSON")
    g.add_argument("--pretrained", metavar="TAG", default=d(None),
                   help="OpenCLIP pretrained tag, downloaded once from the model hub")
    g.add_argument("--weights", metavar="FILE", default=d(None),
                   help="local checkpoint (.safetensors/.pt/.bin) instead of downloading")
    g.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"], default=d(None),
                   help="where the model runs (default: auto = CUDA, then MPS, then CPU)")
    g.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16", "int8"], default=d(None),
                   help="the model's number format (default: $CLIPPHOTOS_PRECISION, else auto = fp16 on GPUs; on "
                        "CPUs the fastest measured here that stays within 0.999 cosine of fp32: bf16 where native, "
                        "int8 or fp32 through ONNX Runtime)")
    g.add_argument("--json", action="store_true", default=d(False), help="machine-readable result on stdout")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="clipphotos", description="Search, tag and de-duplicate your photos with a local CLIP model. "
                                       "With no command, opens the desktop app.")
    parser.add_argument("--version", action="version", version=f"clipphotos {__version__}")
    _global_options(parser, suppress=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        _global_options(p, suppress=True)
        return p

    p = command("index", "add folders to the library and index new, changed, moved and deleted photos")
    p.add_argument("folders", nargs="*", metavar="FOLDER", help="folders to add (default: the library's folders)")
    p.add_argument("--follow-links", action="store_true", help="follow symbolic links that leave the folder")
    p.add_argument("--workers", type=int, help="decoding threads (default: by CPU count)")
    p.add_argument("--no-text", dest="read_text", action="store_false", default=None,
                   help="do not read the words in photos this time (Settings can switch it off for good)")

    p = command("search", "find photos by a description and/or a picture")
    p.add_argument("query", nargs="?", help='what to look for, e.g. "dog on a beach"')
    p.add_argument("--image", metavar="FILE", help="find photos like this one")
    p.add_argument("--not", dest="negative", action="append", default=[], metavar="TEXT",
                   help="push photos matching this down (repeatable)")
    p.add_argument("--folder", metavar="DIR", help="only photos inside this folder")
    p.add_argument("--since", metavar="YYYY-MM-DD", help="only photos taken on or after this day")
    p.add_argument("--until", metavar="YYYY-MM-DD", help="only photos taken on or before this day")
    p.add_argument("--limit", type=_positive_int, help="how many results (default 20; with --matches-only: all matches)")
    p.add_argument("--tag", metavar="NAME", help="only photos this label applies to")
    p.add_argument("--matches-only", action="store_true",
                   help="only the photos that clearly match, not the less likely ones after them")
    p.add_argument("--text", dest="text_query", metavar="WORDS",
                   help='only photos whose text (read in them) holds these words, e.g. "sunflower42"')

    command("status", "what the library holds: photos, folders, model, skipped files")

    p = command("watch", "keep the library's folders indexed as photos come and go, until Ctrl+C")
    p.add_argument("folders", nargs="*", metavar="FOLDER", help="folders to add (default: the library's folders)")
    p.add_argument("--follow-links", action="store_true", help="follow symbolic links that leave the folder")
    p.add_argument("--workers", type=int, help="decoding threads (default: by CPU count)")
    p.add_argument("--stability", type=float, metavar="SECONDS",
                   help="read a file once its size and time held still this long (default 1.5)")
    p.add_argument("--rescan", type=float, metavar="MINUTES",
                   help="rescan every folder this often, as events can be lost (default 10)")
    p.add_argument("--poll", type=float, metavar="SECONDS",
                   help="rescan folders that give no events (network shares) this often (default 60)")
    p.add_argument("--polling", action="store_true", help="use no file system events: rescan every --poll seconds")
    p.add_argument("--no-text", dest="read_text", action="store_false", default=None,
                   help="do not read the words in photos this time (Settings can switch it off for good)")

    p = command("demo", "draw a demo library of shapes, index it with the bundled toy model and show it")
    p.add_argument("folder", nargs="?", help="where to create the demo library (default: a demo folder "
                                             "beside the user data folder; never your own library)")
    p.add_argument("--no-gui", action="store_true", help="print the walk-through instead of opening the app")

    command("doctor", "check device, model, catalog, index, watch limits and disk, each with a fix")
    p = command("backup", "copy the library's catalog (its source of truth) while it stays in use")
    p.add_argument("dest", metavar="DEST", help="a file, or a folder to put a dated copy in")
    p = command("repair", "rebuild the search index from the catalog and forget files that are gone")
    p.add_argument("--yes", action="store_true", help="forget vanished files without asking")
    p.add_argument("--rebuild-catalog", action="store_true",
                   help="a damaged catalog: set it aside, start a fresh one with what can still be read of it "
                        "(folders, model, labels, tag answers) and index the folders again")

    _tag_commands(command("tag", "auto-tag photos with your own labels, review them, export XMP sidecars"))

    p = command("dupes", "find exact copies, near-duplicates and similar shots; move the extra copies away safely")
    p.add_argument("--tier", choices=["exact", "near", "similar"], help="only this tier (default: all three)")
    act = p.add_mutually_exclusive_group()
    act.add_argument("--trash-others", action="store_true",
                     help="move every exact/near group's files but the suggested keep to the trash "
                          "(held a week in the folder's .clipphotos-trash for --undo, then the system trash)")
    act.add_argument("--move-others", metavar="DIR", help="move them into this folder instead")
    act.add_argument("--not-duplicates", nargs="+", metavar="PATH",
                     help="these files are not duplicates of each other: never group them again")
    act.add_argument("--group-again", nargs="+", metavar="PATH",
                     help="take back --not-duplicates: these files may be grouped again where they match")
    act.add_argument("--undo", action="store_true",
                     help="put the files of the last `dupes --trash-others` back where they were, and in the library")
    act.add_argument("--empty-holding", action="store_true",
                     help="send every held clean-up on to the system trash now (they can no longer be undone here)")
    p.add_argument("--yes", action="store_true", help="move without asking")

    p = command("folders", "list, add or remove the library's folders (remove also forgets a drive "
                           "mounted inside one that `status` lists as away)")
    p.add_argument("action", nargs="?", choices=["list", "add", "remove"], default="list")
    p.add_argument("paths", nargs="*", metavar="FOLDER")
    return parser


def _tag_commands(tag: argparse.ArgumentParser) -> None:
    """`clipphotos tag ACTION …`: labels, runs, reviews and XMP export (see clipphotos.tags)."""
    sub = tag.add_subparsers(dest="tag_action", metavar="ACTION", required=True)

    def action(name: str, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        _global_options(p, suppress=True)
        return p

    p = action("add", "create a label (or give it new prompts)")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--prompt", action="extend", nargs="+", default=[], metavar="TEXT",
                   help='a describing phrase, e.g. "a photo of a shopping receipt" (repeatable)')
    p = action("remove", "forget a label, its tags and reviews")
    p.add_argument("name", metavar="NAME")
    action("list", "the labels with their prompts, counts and thresholds")
    p = action("run", "calibrate every label on the library and tag the photos")
    p.add_argument("--folder", metavar="DIR", help="only tag the photos in this folder")
    p.add_argument("--label", action="append", metavar="NAME", help="only decide this label (repeatable)")
    for name, verb in (("accept", "the label applies to"), ("reject", "the label does not apply to")):
        p = action(name, f"tell ClipPhotos {verb} these photos; the rest of the library is decided again")
        p.add_argument("name", metavar="NAME")
        p.add_argument("paths", nargs="+", metavar="PATH")
    p = action("show", "a label's suggestions, most confident first, with the reasons")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--limit", type=_positive_int, default=20, help="how many photos (default 20)")
    p.add_argument("--uncertain", action="store_true", help="the photos the label is least sure of first")
    p.add_argument("--folder", metavar="DIR", help="only photos in this folder")
    p = action("export-xmp", "write the tags into XMP sidecars beside the photos (photos are never modified)")
    p.add_argument("--folder", metavar="DIR", help="only photos in this folder")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    args = build_parser().parse_args(argv)
    for name, default in (("library", None), ("model", None), ("pretrained", None), ("weights", None),
                          ("device", None), ("precision", None), ("json", False)):
        if not hasattr(args, name):
            setattr(args, name, default)
    return args


# -- output helpers ------------------------------------------------------------------------


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def emit(args: argparse.Namespace, data: dict, human: Callable[[], None]) -> None:
    if args.json:
        json.dump(json_safe(data), sys.stdout, ensure_ascii=True, indent=1)
        sys.stdout.write("\n")
    else:
        human()


def _undecodable(value: object) -> bool:
    """A str holding a file name that is not valid UTF-8 (its bytes kept as lone surrogates)."""
    return isinstance(value, str) and any("\udc80" <= ch <= "\udcff" for ch in value)


def _as_text(value: str) -> str:
    """Valid text for a name: each byte that is not UTF-8 written as the four characters \\xNN."""
    return os.fsencode(value).decode("utf-8", "backslashreplace") if _undecodable(value) else value


def _as_bytes(value: str) -> str | None:
    return base64.b64encode(os.fsencode(value)).decode("ascii") if _undecodable(value) else None


def json_safe(data: object) -> object:
    """The document with every string valid Unicode (strict JSON readers reject lone surrogates).

    A file name that is not valid UTF-8 is shown with its undecodable bytes as `\\xNN`, and the
    object holding it gets a twin field `<field>_bytes`: the name's exact bytes in base64 (for a
    list of names, a list with null where a name is plain text). Nothing is lost.
    """
    if isinstance(data, dict):
        out: dict = {}
        for key, value in data.items():
            out[key] = json_safe(value)
            if _undecodable(value):
                out[f"{key}_bytes"] = _as_bytes(value)
            elif isinstance(value, list) and any(map(_undecodable, value)):
                out[f"{key}_bytes"] = [_as_bytes(v) if isinstance(v, str) else None for v in value]
        return out
    if isinstance(data, (list, tuple)):
        return [json_safe(v) for v in data]
    return _as_text(data) if isinstance(data, str) else data


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 \
        else f"{seconds // 60:02d}:{seconds % 60:02d}"


def _count(n: int) -> str:
    """1240 → "1 240" (thin spaces group the thousands)."""
    return f"{n:,}".replace(",", "\u2009")


class ProgressBar:
    """A one-line progress bar on stderr (img/s and ETA) when stderr is a terminal."""

    def __init__(self, stream=None) -> None:
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty()
        self._last = 0.0

    def __call__(self, p: Progress) -> None:
        if not self.live:
            return
        now = time.monotonic()
        if p.phase == "indexing" and now - self._last < 0.1 and p.done != p.total:
            return
        self._last = now
        if p.phase == "scanning":
            line = "Scanning folders…"
        elif p.phase == "indexing" and p.total:
            width = 28
            filled = int(width * p.done / p.total)
            name = os.path.basename(p.current)[-30:]
            line = (f"[{'#' * filled}{'.' * (width - filled)}] {p.done}/{p.total} "
                    f"{p.images_per_second:5.1f} img/s  ETA {_duration(p.eta_seconds)}  {name}")
        elif p.phase == "reading text" and p.total:
            line = f"Reading text: {_count(p.done)} of {_count(p.total)}"
        else:
            line = "Finishing…" if p.phase == "finishing" else ""
        self.stream.write("\r\033[K" + line + ("\n" if p.phase == "done" else ""))
        self.stream.flush()


# -- commands ------------------------------------------------------------------------------


def open_library(args: argparse.Namespace, workers: int | None = None, must_exist: bool = False,
                 brief: bool = False):
    """The library named by --library, with the model the options ask for (else its own).

    Read commands pass `must_exist`: a mistyped --library must not make a new, empty library.
    A command that asks one question and exits passes `brief` (see Library)."""
    from clipphotos.library import Library
    return Library(args.library, model=_model_spec(args), device=args.device, workers=workers,
                   precision=args.precision, must_exist=must_exist, brief=brief)


def _model_spec(args: argparse.Namespace):
    """The model the options ask for, or None (the library's own)."""
    from clipphotos.model_choices import ModelRequest
    request = ModelRequest.from_options(args.model, args.pretrained, args.weights)
    return request.spec() if request is not None else None


def open_with_folders(args: argparse.Namespace):
    """The library with the command's FOLDERs added; None, having said why, if it has no folder at all."""
    lib = open_library(args, workers=args.workers)
    try:
        lib.ensure_intact()   # indexing must not build on a damaged catalog
        for folder in args.folders:
            lib.add_folder(folder, follow_links=args.follow_links)
        if lib.folders():
            return lib
    except BaseException:
        lib.close()
        raise
    lib.close()
    say(f"The library has no folders yet: clipphotos {args.command} FOLDER")
    return None


def cmd_index(args: argparse.Namespace) -> int:
    lib = open_with_folders(args)
    if lib is None:
        return EXIT_USAGE
    try:
        report = lib.index_folders(on_progress=ProgressBar(), read_text=args.read_text)
    finally:
        lib.close()
    emit(args, report.to_json(), lambda: _print_index(report))
    return 0


def _print_index(r: IndexReport) -> None:
    print(f"Indexed {r.indexed} photos ({r.embedded} embedded), {r.unchanged} unchanged, {r.moved} moved, "
          f"{r.removed} removed, {len(r.skipped)} skipped in {r.seconds:.1f} s")
    if r.text is not None:
        print(f"Read the text in {r.text.read} photos ({r.text.with_text} with text)"
              + (f", {r.text.left} left for the next run" if r.text.left else ""))
    for folder in r.offline_folders:
        print(f"  offline (kept as it was): {folder}")
    if r.thumbnails_failed:
        print(f"  {r.thumbnails_failed} thumbnails could not be written ({r.thumbnail_error}); "
              f"they are made when shown, once there is room")
    for path, reason in r.skipped[:20]:
        print(f"  skipped {path}: {reason}")
    if len(r.skipped) > 20:
        print(f"  … and {len(r.skipped) - 20} more (clipphotos status lists them all)")


def cmd_watch(args: argparse.Namespace) -> int:
    """Watch until Ctrl+C or SIGTERM: the batch in flight is finished and saved, and the exit code is 0."""
    from clipphotos.watcher import WatchEngine, settings_from
    lib = open_with_folders(args)
    if lib is None:
        return EXIT_USAGE
    try:
        settings = settings_from(stability_seconds=args.stability, poll_seconds=args.poll,
                                 reconcile_seconds=args.rescan * 60 if args.rescan else None,
                                 events=False if args.polling else None)
        engine = WatchEngine(lib, settings, on_progress=ProgressBar(), on_report=_print_watch_run,
                             read_text=args.read_text)
        with _stopped_by_signals(engine.stop):
            engine.start()
            say("Watching the library's folders; Ctrl+C stops (nothing is lost).")
            shown: list = []
            while not engine.join(0.5):
                shown = _print_watched(engine.state().watching, shown)
    finally:
        lib.close()
    if engine.error is not None:
        raise engine.error
    emit(args, engine.totals.to_json(), lambda: _print_index(engine.totals))
    return 0


@contextlib.contextmanager
def _stopped_by_signals(stop: Callable[..., None]) -> Iterator[None]:
    """While inside, Ctrl+C and SIGTERM ask `stop(wait=False)` instead of killing the command."""
    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(ValueError):  # not the main thread: leave signals alone
            previous[sig] = signal.signal(sig, lambda *_: stop(wait=False))
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _print_watched(watching: list, shown: list) -> list:
    """Say how each folder is watched, whenever that changes (a share falls back to polling, say)."""
    for w in watching:
        if w not in shown:
            say(f"  {w.mode:8s} {w.folder}" + (f"  ({w.reason})" if w.reason else ""))
    return watching


def _print_watch_run(r: IndexReport) -> None:
    if r.indexed or r.moved or r.removed:
        say(f"{time.strftime('%H:%M:%S')}  indexed {r.indexed} ({r.embedded} embedded), {r.moved} moved, "
            f"{r.removed} removed in {r.seconds:.1f} s")


def cmd_search(args: argparse.Namespace) -> int:
    if not args.query and not args.image and not args.text_query:
        say("Say what to look for: clipphotos search \"dog on a beach\" (or --image FILE, or --text WORDS)")
        return EXIT_USAGE
    if args.text_query is not None and (args.query or args.image):
        say("--text searches the words in photos alone: give it without a description or --image")
        return EXIT_USAGE
    for bound in (args.since, args.until):
        if bound is not None and not _is_iso_date(bound):
            say(f"clipphotos: {bound!r} is not a date; use YYYY-MM-DD")
            return EXIT_USAGE
    if args.limit is not None and args.limit < 1:
        say("clipphotos: --limit must be at least 1")
        return EXIT_USAGE
    limit = args.limit if args.limit is not None or args.matches_only else 20
    from clipphotos.library import SearchAnswer
    lib = open_library(args, must_exist=True, brief=True)
    try:
        if lib.photo_count() == 0:
            say("The library is empty: add photos with  clipphotos index FOLDER")
            answer = SearchAnswer([], 0)
        elif args.text_query is not None:
            found = lib.search_text(args.text_query, folder=args.folder, since=args.since, until=args.until,
                                    tag=args.tag, limit=limit)
            answer = SearchAnswer(found, len(found))
        else:
            answer = lib.find(args.query, image=args.image, negative=args.negative, folder=args.folder,
                              since=args.since, until=args.until, tag=args.tag, limit=limit,
                              matches_only=args.matches_only)
    finally:
        lib.close()

    def human() -> None:
        results = answer.results
        what = f"'{args.query or args.text_query}'" if args.query or args.text_query else "this picture"
        if not results:
            say(f"No photo clearly matches {what}." if args.matches_only else "No photos matched.")
            return
        if not answer.matches:
            print(f"No photo clearly matches {what}; the closest ones are below")
        for i, r in enumerate(results):
            if i and r.match != results[i - 1].match:
                print(f"{'─' * 6}  less likely  {'─' * 6}")
            also = f"  (+ {', '.join(os.path.basename(c) for c in r.companions)})" if r.companions else ""
            print(f"{r.score:6.3f}  {r.path}{also}")
            for line in r.text:
                print(f"        “{line}”")
    emit(args, {"matches": answer.matches, "results": [r.to_json() for r in answer.results]}, human)
    return 0


def _is_iso_date(text: str) -> bool:
    from datetime import date
    try:
        date.fromisoformat(text)
        return True
    except ValueError:
        return False


def cmd_status(args: argparse.Namespace) -> int:
    lib = open_library(args, must_exist=True)
    try:
        status = lib.status()
    finally:
        lib.close()

    def human() -> None:
        print(f"Library: {status['library']}")
        print(f"Model:   {status['model'] or 'none yet (indexing picks the default)'}")
        print(f"Precision: {status['precision']} ({status['precision_reason']})")
        print(f"Photos:  {status['photos']}   Skipped: {status['skipped']}")
        text = status["text"]
        print(f"Text:    read in {text['read']} photos ({text['with_text']} with text), {text['left']} to read"
              + ("" if text["enabled"] else "; switched off"))
        for f in status["folder_details"]:
            print(f"  {f['photos']:7d}  {f['path']}{'' if f['online'] else '  (offline)'}")
            for away in f["away"]:
                print(f"           {away}  (its drive is away: its photos are kept)")
        if status.get("watching"):
            print(f"Watching: {status['queued']} queued")
            for w in status["watching"]:
                print(f"  {w['mode']:8s} {w['folder']}")
        if status["skipped_files"]:
            print("Skipped files:")
            for s in status["skipped_files"]:
                print(f"  {s['path']}: {s['reason']}")
    emit(args, status, human)
    return 0


def cmd_folders(args: argparse.Namespace) -> int:
    from clipphotos.library import Library
    lib = Library(args.library)
    try:
        for path in args.paths:
            if args.action == "add":
                lib.add_folder(path)
            elif args.action == "remove" and not lib.remove_folder(path):
                say(f"{path} is not one of the library's folders")
        folders = [p for _, p, _ in lib.folders()]
    finally:
        lib.close()
    emit(args, {"folders": folders}, lambda: print("\n".join(folders) if folders else "(no folders)"))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from clipphotos.demo import build_demo, print_walk_through, walk_through
    say("Drawing and indexing the demo library (a few seconds)…")
    demo = build_demo(args.folder, on_progress=ProgressBar())
    report = walk_through(demo)
    if args.no_gui or args.json:
        emit(args, report, lambda: print_walk_through(report))
        return 0
    try:
        from clipphotos.gui.app import run_app
    except ImportError as exc:
        say(f"The desktop app cannot start ({exc}); here is the walk-through instead.")
        print_walk_through(report)
        return 0
    args.library = str(demo.root)
    return run_app(args)


def cmd_doctor(args: argparse.Namespace) -> int:
    from clipphotos.library import CatalogDamaged, is_damage
    from clipphotos.doctor import report, report_unopened
    try:
        lib = open_library(args)
    except (CatalogDamaged, sqlite3.DatabaseError) as exc:
        if not is_damage(exc):
            raise
        root = Path(_library_dir(args))
        data = report_unopened(root, root / "catalog.sqlite3", getattr(exc, "problem", str(exc)))
    else:
        try:
            data = report(lib)
        finally:
            lib.close()

    def human() -> None:
        print(f"ClipPhotos {data['version']} on {data['platform']}, Python {data['python']}")
        for c in data["checks"]:
            print(f"{'ok ' if c['ok'] else 'FIX'}  {c['check']:<13} {c['detail']}")
            if c["fix"]:
                print(f"{'':18}→ {c['fix']}")
    emit(args, data, human)
    return 0 if data["ok"] else 1


def cmd_backup(args: argparse.Namespace) -> int:
    from clipphotos.library import Library
    with Library(args.library, must_exist=True) as lib:
        dest = lib.backup(args.dest)
    emit(args, {"backup": str(dest)}, lambda: print(f"Catalog backed up to {dest}"))
    return 0


def cmd_repair(args: argparse.Namespace) -> int:
    if args.rebuild_catalog:
        return _rebuild_catalog(args)
    lib = open_library(args)
    try:
        with lib.writing():
            lib.ensure_intact()
            vectors = lib.rebuild_index()
            vanished = lib.vanished_files()
            forgotten = 0
            if vanished and not args.yes:
                for path in vanished[:20]:
                    say(f"  gone: {path}")
                if sys.stdin.isatty() and not args.json:
                    answer = input(f"Forget these {len(vanished)} files that no longer exist? [y/N] ")
                    args.yes = answer.strip().lower() in ("y", "yes")
                else:
                    say(f"{len(vanished)} catalogued files no longer exist; run again with --yes to forget them.")
            if vanished and args.yes:
                forgotten = lib.forget(vanished)
    finally:
        lib.close()
    data = {"index_vectors": vectors, "vanished": vanished, "forgotten": forgotten}
    emit(args, data, lambda: print(f"Index rebuilt ({vectors} vectors); {forgotten} vanished files forgotten."))
    return 0


def _rebuild_catalog(args: argparse.Namespace) -> int:
    from clipphotos.library import rebuild_catalog
    done = rebuild_catalog(args.library, model=_model_spec(args), device=args.device, on_progress=ProgressBar())

    def human() -> None:
        for path in done.set_aside:
            print(f"Damaged catalog set aside as {path} (delete it once all is well).")
        s = done.salvaged
        print(f"Carried over: {s['folders']} folders, {s['labels']} labels, {done.reviews_restored} of "
              f"{s['tag_answers']} tag answers, {s['not_duplicates']} 'not duplicates' marks"
              f"{', the model' if s['model'] else ''}.")
        _print_index(done.index)
        if not s["folders"]:
            print("No folder could be read from the damaged catalog: add yours again with  clipphotos index FOLDER")
        if s["labels"]:
            print("Tag the library again with your labels and answers:  clipphotos tag run")
    emit(args, done.to_json(), human)
    return 0


def cmd_tag(args: argparse.Namespace) -> int:
    from clipphotos.tags import UnknownLabel, UnknownPhoto
    lib = open_library(args)
    try:
        return _TAG_ACTIONS[args.tag_action](args, lib.labels)
    except (UnknownLabel, UnknownPhoto, ValueError) as exc:
        say(f"clipphotos: {exc}")
        return EXIT_USAGE
    finally:
        lib.close()


def _tag_add(args: argparse.Namespace, labels) -> int:
    label = labels.add(args.name, args.prompt)
    emit(args, {"label": label.name, "prompts": list(label.prompts)},
         lambda: print(f"Label {label.name!r} ready; tag the library with  clipphotos tag run"))
    return 0


def _tag_remove(args: argparse.Namespace, labels) -> int:
    removed = labels.remove(args.name)
    if not removed:
        say(f"clipphotos: no label named {args.name!r}")
    emit(args, {"removed": removed}, lambda: print(f"Label {args.name!r} removed.") if removed else None)
    return 0 if removed else EXIT_USAGE


def _tag_list(args: argparse.Namespace, labels) -> int:
    infos = labels.info()

    def human() -> None:
        for i in infos:
            cut = f"threshold {i.threshold:+.3f} ({i.method})" if i.threshold is not None else "not run yet"
            print(f"{i.name:20s} {i.tagged:7d} photos  {cut}  +{i.accepted}/-{i.rejected} reviewed"
                  + (f"  prompts: {'; '.join(i.prompts)}" if i.prompts else ""))
        if not infos:
            say('No labels yet: clipphotos tag add NAME [--prompt "a photo of …"]')
    emit(args, {"labels": [i.to_json() for i in infos]}, human)
    return 0


def _tag_run(args: argparse.Namespace, labels) -> int:
    result = labels.run(args.label, folder=args.folder)

    def human() -> None:
        counts = {name: 0 for name in result.labels}
        for names in result.tags.values():
            for name in names:
                counts[name] = counts.get(name, 0) + 1
        for name, summary in result.labels.items():
            rivals = f"; rivals: {', '.join(summary['rivals'])}" if summary["rivals"] else ""
            print(f"{name:20s} {counts.get(name, 0):7d} photos  threshold {summary['threshold']:+.3f} "
                  f"({summary['method']}{rivals})")
        print(f"Tagged {sum(bool(t) for t in result.tags.values())} of {len(result.tags)} photos.")
    emit(args, result.to_json(), human)
    return 0


def _tag_review(args: argparse.Namespace, labels) -> int:
    accepted = args.tag_action == "accept"
    result = labels.review(args.name, args.paths, accepted)
    label = labels.get(args.name).name
    summary = result.labels[label]
    tagged = sum(label in names for names in result.tags.values())
    emit(args, {"label": label, "answer": "accepted" if accepted else "rejected", "paths": args.paths,
                "tagged": tagged, "calibration": summary},
         lambda: print(f"{len(args.paths)} photos {args.tag_action}ed; {label!r} now applies to {tagged} "
                       f"photos (threshold {summary['threshold']:+.3f})."))
    return 0


def _tag_show(args: argparse.Namespace, labels) -> int:
    found = labels.suggestions(args.name, limit=args.limit, uncertain_first=args.uncertain,
                               include_reviewed=True, folder=args.folder)

    def human() -> None:
        for d in found:
            print(f"{d.confidence:5.0%}  {d.path}\n       {d.explain()}")
    emit(args, {"label": labels.get(args.name).name, "suggestions": [d.to_json() for d in found]}, human)
    return 0


def _tag_export(args: argparse.Namespace, labels) -> int:
    report = labels.export_xmp(folder=args.folder)

    def human() -> None:
        print(f"{len(report.written)} sidecars written, {report.unchanged} already up to date.")
        for path, reason in report.failed:
            print(f"  not written {path}: {reason}")
    emit(args, report.to_json(), human)
    return 1 if report.failed else 0


_TAG_ACTIONS = {"add": _tag_add, "remove": _tag_remove, "list": _tag_list, "run": _tag_run,
                "accept": _tag_review, "reject": _tag_review, "show": _tag_show, "export-xmp": _tag_export}


def cmd_dupes(args: argparse.Namespace) -> int:
    from clipphotos.duplicates import TIERS
    from clipphotos.library import Library
    moving = args.trash_others or args.move_others
    if moving and args.tier == "similar":
        say("Similar shots are different photos: they are never moved away in bulk; choose them one by one.")
        return EXIT_USAGE
    with Library(args.library) as lib:
        if args.not_duplicates or args.group_again:
            return _dupes_set_apart(args, lib)
        if args.undo or args.empty_holding:
            return _dupes_undo(args, lib) if args.undo else _dupes_empty(args, lib)
        with StageLine("Looking for duplicates") as stage:
            groups = lib.duplicates((args.tier,) if args.tier else TIERS, on_progress=_signal_progress(),
                                    on_stage=stage)
        if not moving:
            emit(args, {"groups": [g.to_json() for g in groups]}, lambda: _print_dupes(groups))
            return 0
        return _dupes_move(args, lib, groups)


def _signal_progress() -> Callable[[int, int], None]:
    live = sys.stderr.isatty()

    def show(done: int, total: int) -> None:
        if live and (done == total or done % 50 == 0):
            sys.stderr.write(f"\r\033[KReading photos indexed before duplicate detection: {done}/{total}"
                             + ("\n" if done == total else ""))
    return show


class StageLine:
    """Each step of a long search on one line of stderr (a terminal only), cleared at the end."""

    def __init__(self, what: str) -> None:
        self.what, self.live = what, sys.stderr.isatty()

    def __call__(self, stage: str) -> None:
        if self.live:
            sys.stderr.write(f"\r\033[K{self.what}: {stage}…")
            sys.stderr.flush()

    def __enter__(self) -> StageLine:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()


def _dupes_set_apart(args: argparse.Namespace, lib) -> int:
    """--not-duplicates sets the files apart, --group-again takes that back."""
    paths = args.not_duplicates or args.group_again
    try:
        if args.not_duplicates:
            pairs = lib.mark_not_duplicates(paths).pairs
        else:
            pairs = lib.group_again(paths)
    except (FileNotFoundError, ValueError) as exc:
        say(f"clipphotos: {exc}")
        return EXIT_USAGE
    if args.not_duplicates:
        emit(args, {"not_duplicates": paths, "pairs": pairs},
             lambda: print(f"These {len(paths)} files will not be grouped together again."))
    else:
        emit(args, {"group_again": paths, "pairs": pairs},
             lambda: print(f"These {len(paths)} files may be grouped again where they match "
                           f"({pairs} pair{'s' if pairs != 1 else ''} no longer set apart)." if pairs else
                           f"None of these {len(paths)} files were set apart from each other."))
    return 0


def _dupes_move(args: argparse.Namespace, lib, groups: list) -> int:
    from clipphotos.duplicates import ACTION_TIERS
    groups = [g for g in groups if g.tier in ACTION_TIERS]
    others = sorted({p for g in groups for p in g.others()})
    where = "the trash" if args.trash_others else args.move_others
    if others and not args.yes:
        if not (sys.stdin.isatty() and not args.json):
            say(f"clipphotos: {len(others)} files would move to {where}; nothing was moved. "
                f"Add --yes to confirm (or run in a terminal to be asked).")
            return EXIT_USAGE
        _print_dupes(groups)
        if input(f"Move {len(others)} files to {where}? [y/N] ").strip().lower() not in ("y", "yes"):
            say("Nothing was moved.")
            return 0
    report = (lib.trash_duplicates(groups, source="cli") if args.trash_others
              else lib.move_duplicates(groups, args.move_others))

    def human() -> None:
        weight = f" ({_megabytes(report.bytes)})" if args.trash_others else ""
        print(f"Moved {len(report.moved)} files{weight} to {where}; every group keeps its suggested file.")
        if args.trash_others and report.moved:
            print("`clipphotos dupes --undo` puts them back where they were.")
        for path, reason in report.failed:
            print(f"  not moved: {path}: {reason}")
    result = report.to_json()
    if not args.trash_others:
        moved = [p for p, _ in report.moved]
        result.update(files=len(moved), bytes=sum(os.path.getsize(new) for _, new in report.moved))
    emit(args, {"groups": [g.to_json() for g in groups], **result}, human)
    return 1 if report.failed else 0


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def _dupes_undo(args: argparse.Namespace, lib) -> int:
    report = lib.undo_cleanup(source="cli")

    def human() -> None:
        if report.cleanup is None:
            print("Nothing to undo: no `dupes --trash-others` is held any more.")
            return
        print(f"Put back {len(report.restored)} files ({_megabytes(report.bytes)}) where they were.")
        for path, reason in report.failed:
            print(f"  not put back: {path}: {reason}")
    emit(args, report.to_json(), human)
    return 1 if report.failed else 0


def _dupes_empty(args: argparse.Namespace, lib) -> int:
    report = lib.empty_holding()

    def human() -> None:
        print(f"Sent {len(report.trashed)} held files ({_megabytes(report.bytes)}) on to the system trash.")
        for path, reason in report.failed:
            print(f"  still held: {path}: {reason}")
    emit(args, report.to_json(), human)
    return 1 if report.failed else 0


_TIER_TITLES = {"exact": "Exact copies (byte-identical)", "near": "Near-duplicates (the same picture saved again)",
                "similar": "Similar shots (moments apart: pick by hand, never moved in bulk)"}


def _print_dupes(groups: list) -> None:
    if not groups:
        print("No duplicates found.")
        return
    for tier, title in _TIER_TITLES.items():
        mine = [g for g in groups if g.tier == tier]
        if mine:
            print(f"{title}: {len(mine)} group{'s' if len(mine) > 1 else ''}")
        for group in mine:
            for n, f in enumerate(group.files):
                size = f"{f.width}×{f.height} {f.format or '?'} {f.size / 1e6:.1f} MB"
                print(f"  {'keep' if n == 0 else '    '}  {f.path}   ({size})")
            print(f"        why: {'; '.join(group.reasons)}")
    extra = sum(len(g.others()) for g in groups if g.tier != "similar")
    if extra:
        print(f"{extra} extra copies: `clipphotos dupes --trash-others` sends them to the trash "
              f"(or `--move-others DIR`); `--not-duplicates PATH PATH…` sets files apart "
              f"(`--group-again PATH PATH…` takes that back).")


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "doctor": cmd_doctor, "backup": cmd_backup, "repair": cmd_repair,
    "index": cmd_index, "search": cmd_search, "status": cmd_status, "folders": cmd_folders, "demo": cmd_demo,
    "watch": cmd_watch, "tag": cmd_tag, "dupes": cmd_dupes,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.command is None:
        try:
            from clipphotos.gui.app import run_app
        except ImportError as exc:
            say(f"The desktop app cannot start ({exc}); the commands below still work.")
            build_parser().print_help(sys.stderr)
            return EXIT_USAGE
        return run_app(args)
    from clipphotos.library import CatalogDamaged, LibraryBusy, LibraryReadOnly, LibraryUnusable, NoLibrary
    from clipphotos.models import ModelUnavailable
    try:
        code = COMMANDS[args.command](args)
        sys.stdout.flush()   # here, so that a reader gone away is met below, not at exit
        return code
    except BrokenPipeError:
        _stdout_gone()
        return EXIT_PIPE
    except ModelUnavailable as exc:
        say(f"clipphotos: {exc}")
        return EXIT_USAGE
    except LibraryBusy as exc:
        say(f"clipphotos: {exc}")
        return EXIT_BUSY
    except NoLibrary as exc:
        say(f"clipphotos: {exc}")
        return EXIT_USAGE
    except (CatalogDamaged, LibraryReadOnly, LibraryUnusable) as exc:
        say(f"clipphotos: {exc}" + (f". Your photos are untouched; {_doctor_hint(args)} says how to recover."
                                   if isinstance(exc, CatalogDamaged) else ""))
        return EXIT_FAULT
    except sqlite3.DatabaseError as exc:
        code, message = _database_fault(args, exc)
        say(f"clipphotos: {message}")
        return code
    except (NotADirectoryError, FileNotFoundError) as exc:
        say(f"clipphotos: {exc}")
        return EXIT_USAGE
    except OSError as exc:
        say(f"clipphotos: {_file_system_fault(args, exc)}")
        return EXIT_FAULT
    except KeyboardInterrupt:
        say("Interrupted: nothing is lost; run the command again to carry on.")
        return 130
    except Exception as exc:
        if not _unreadable_picture(exc):
            raise
        say(f"clipphotos: {exc}")
        return EXIT_USAGE


def _stdout_gone() -> None:
    """The output's reader closed it (`clipphotos status --json | head`): nothing to report, as
    other command-line tools; standard output goes nowhere, so the final flush at exit is quiet."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _unreadable_picture(exc: Exception) -> bool:
    """Whether `exc` is a picture that cannot be read (the loader's UnreadableImage). Only a
    command that decoded something imported the loader; the others never pay for importing it."""
    loader = sys.modules.get("clipphotos.loader")
    return loader is not None and isinstance(exc, loader.UnreadableImage)


# -- faults: one clear message each, exit code 4 ---------------------------------------------


def _library_dir(args: argparse.Namespace) -> str:
    from clipphotos.library import default_library_dir
    return str(Path(args.library).expanduser().resolve() if args.library else default_library_dir())


def _doctor_hint(args: argparse.Namespace) -> str:
    return "`clipphotos doctor" + (f" --library {args.library}`" if args.library else "`")


_DISK_FULL = ("you are out of disk space where the library lives ({where}). Free some space and run the "
              "command again: nothing is lost, an interrupted index carries on where it stopped.")
_READ_ONLY = ("the library at {where} is read-only here ({why}). search, status, doctor and backup work on it; "
              "indexing and other changes need write access (check the folder's owner and permissions, or "
              "whether its drive is mounted read-only).")


def _database_fault(args: argparse.Namespace, exc: sqlite3.DatabaseError) -> tuple[int, str]:
    """(exit code, message) for an error SQLite raised: damage, a full disk, read-only, a lock."""
    from clipphotos.library import is_damage
    where, text = _library_dir(args), str(exc).lower()
    if is_damage(exc):
        return EXIT_FAULT, (f"the library's catalog in {where} is damaged ({exc}). Your photos are untouched; "
                            f"{_doctor_hint(args)} says how to recover.")
    if "full" in text:
        return EXIT_FAULT, _DISK_FULL.format(where=where)
    if "readonly" in text or "read-only" in text:
        return EXIT_FAULT, _READ_ONLY.format(where=where, why=exc)
    if "locked" in text or "busy" in text:
        return EXIT_BUSY, f"the library at {where} is busy ({exc}); try again in a moment"
    if "unable to open" in text:
        return EXIT_FAULT, (f"the catalog in {where} cannot be opened ({exc}): check that the folder and "
                            f"catalog.sqlite3 in it are yours and readable (ls -l).")
    return EXIT_FAULT, f"the library's catalog in {where} failed: {exc}. {_doctor_hint(args)} checks it."


def _file_system_fault(args: argparse.Namespace, exc: OSError) -> str:
    """A message for a file-system error: a full disk, read-only, permissions, a file for a folder."""
    import errno
    where = _library_dir(args)
    name = os.fsdecode(exc.filename) if exc.filename is not None else where
    if exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        return _DISK_FULL.format(where=where)
    if exc.errno == errno.EROFS:
        return _READ_ONLY.format(where=where, why=exc.strerror)
    if exc.errno in (errno.EACCES, errno.EPERM):
        return (f"permission denied: {name}. ClipPhotos must be able to write its library ({where}) and read your "
                f"photo folders: check their owner and permissions (ls -ld).")
    if exc.errno in (errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
        return f"{name}: {exc.strerror}. --library must name a folder (a new one is created)."
    return f"{exc.strerror or exc}: {name}"

