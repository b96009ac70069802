"""Support commands: doctor, backup and repair."""
from __future__ import annotations

import sqlite3

from conftest import MODEL_ARGS


def test_doctor_backup_repair(tmp_path, cli):
    from clipphotos.shapes import write_library
    photos = tmp_path / "photos"
    truth = write_library(photos, 10, seed=21)
    lib = tmp_path / "lib"
    assert cli("index", photos, "--library", lib, *MODEL_ARGS).code == 0

    doctor = cli("doctor", "--library", lib, "--json")
    checks = {c["check"]: c for c in doctor.json["checks"]}
    assert set(checks) == {"device", "precision", "model", "catalog", "index", "watch limits", "disk"}
    assert checks["catalog"]["ok"] and checks["index"]["ok"] and checks["model"]["ok"]
    assert all(c["fix"] for c in checks.values() if not c["ok"])

    backup = cli("backup", tmp_path / "backups", "--library", lib, "--json").json["backup"]
    with sqlite3.connect(backup) as con:
        assert con.execute("SELECT count(*) FROM photos").fetchone()[0] == 10

    # a damaged index shows in the doctor and is mended by repair
    (index_file,) = (lib / "index").glob("*.hnsw")
    index_file.write_bytes(b"broken")
    checks = {c["check"]: c for c in cli("doctor", "--library", lib, "--json").json["checks"]}
    assert not checks["index"]["ok"] and "repair" in checks["index"]["fix"]
    gone = photos / truth[0]["path"]
    gone.unlink()
    r = cli("repair", "--library", lib, "--json")
    assert r.json["index_vectors"] == 10 and r.json["vanished"] == [str(gone)] and r.json["forgotten"] == 0
    r = cli("repair", "--library", lib, "--yes", "--json").json
    assert r["forgotten"] == 1 and r["index_vectors"] == 10
    assert cli("status", "--library", lib, "--json").json["photos"] == 9
    checks = {c["check"]: c for c in cli("doctor", "--library", lib, "--json").json["checks"]}
    assert checks["index"]["ok"]
