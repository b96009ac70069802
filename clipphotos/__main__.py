"""`python -m clipphotos`. (The frozen app starts from installer/launch.py, which runs
multiprocessing.freeze_support() first for the RAW decoding workers; nothing here needs it.)"""

if __name__ == "__main__":
    from clipphotos.cli import main

    raise SystemExit(main())
