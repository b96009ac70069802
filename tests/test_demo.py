"""`clipphotos demo --no-gui`: end to end, offline, with the bundled model; answers checked by truth."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    from clipphotos.cli import main
    import contextlib
    import io
    import json
    import os
    root = tmp_path_factory.mktemp("demo")
    user_data = root / "user-data"
    old = os.environ.get("XDG_DATA_HOME")
    os.environ["XDG_DATA_HOME"] = str(user_data)   # the user's own library must stay untouched
    try:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = main(["demo", str(root / "demo"), "--no-gui", "--json"])
    finally:
        if old is None:
            os.environ.pop("XDG_DATA_HOME")
        else:
            os.environ["XDG_DATA_HOME"] = old
    return code, json.loads(out.getvalue()), root


def test_demo_runs_end_to_end(demo_run, cli):
    code, report, root = demo_run
    assert code == 0
    assert report["photos"] >= 256
    assert len(report["skipped"]) == 3 and all(s["reason"] for s in report["skipped"])
    assert "toy model" in report["note"]
    assert [q["query"] for q in report["queries"]][:2] == ["a red star", "blue circle"]
    for q in report["queries"]:
        assert len(q["results"]) == 5
        assert all("colour" in r and "shape" in r for r in q["results"])   # every answer is checkable
    assert not (root / "user-data").exists()
    # running it again reuses the library: nothing is drawn or embedded twice
    again = cli("demo", root / "demo", "--no-gui", "--json").json
    assert again["photos"] == report["photos"]
    # the text walk-through shows the commands a newcomer can copy
    text = cli("demo", root / "demo", "--no-gui")
    assert 'search "a red star"' in text.out


@pytest.mark.model_quality
def test_demo_answers_are_right(demo_run):
    _, report, _ = demo_run
    for q in report["queries"]:
        assert q["results"][0]["right"], q
        assert q["right"] >= 4, q
