"""`clipphotos demo --no-gui`: end to end, offline, with the bundled model; answers checked by truth."""
from __future__ import annotations


def test_demo_walk_through_is_right(tmp_path, cli, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "user-data"))  # the user's library stays untouched
    r = cli("demo", tmp_path / "demo", "--no-gui", "--json")
    assert r.code == 0, r.err
    report = r.json
    assert report["photos"] >= 256
    assert len(report["skipped"]) == 3 and all(s["reason"] for s in report["skipped"])
    assert "toy model" in report["note"]
    for q in report["queries"]:
        assert len(q["results"]) == 5
        assert q["results"][0]["right"], q
        assert q["right"] >= 4, q
    assert not (tmp_path / "user-data").exists()
    # running it again reuses the library: nothing is drawn or embedded twice
    again = cli("demo", tmp_path / "demo", "--no-gui", "--json").json
    assert again["photos"] == report["photos"]
    # the text walk-through shows the commands a newcomer can copy
    text = cli("demo", tmp_path / "demo", "--no-gui")
    assert 'search "a red star"' in text.out and "✓" in text.out
