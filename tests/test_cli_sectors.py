"""flask sectors/users/demo commands, and lookups that follow whatever sector file is loaded."""

from __future__ import annotations

import json

from sqlalchemy import func, select

from server.extensions import db
from server.models import ROLES, Appeal, Staff
from tests.conftest import APPEAL, SECTOR_FILE, bearer, make_staff


def grid_file(tmp_path, origin=(10.0, 50.0), step=0.01, codes=("A1", "A2", "B1", "B2")):
    """A 2x2 grid of square sectors somewhere that is not Turkestan."""
    x0, y0 = origin
    feats = []
    for i, code in enumerate(codes):
        cx, cy = x0 + (i % 2) * step, y0 + (i // 2) * step
        ring = [[cx, cy], [cx + step, cy], [cx + step, cy + step], [cx, cy + step], [cx, cy]]
        feats.append({"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [ring]},
                      "properties": {"code": code, "name_kk": f"{code} kk", "name_ru": f"{code} ru",
                                     "name_en": f"{code} en", "unit": f"G{code}"}})
    path = tmp_path / "grid.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    return path


def test_validate_reports_ok_and_errors(committed_app, tmp_path):
    runner = committed_app.test_cli_runner()
    ok = runner.invoke(args=["sectors", "validate", str(SECTOR_FILE)])
    assert ok.exit_code == 0, ok.output
    assert "OK: 6 sectors" in ok.output
    grid = json.loads(grid_file(tmp_path).read_text())
    grid["features"][1]["geometry"]["coordinates"][0][0][0] -= 0.005  # A2 now overlaps A1
    bad = tmp_path / "bad.geojson"
    bad.write_text(json.dumps(grid))
    res = runner.invoke(args=["sectors", "validate", str(bad)])
    assert res.exit_code != 0 and "A1" in res.output and "A2" in res.output
    broken = tmp_path / "broken.geojson"
    broken.write_text('{"type": "FeatureCollection", "features": [{"type": "Feature"')
    res = runner.invoke(args=["sectors", "load", str(broken)])
    assert res.exit_code != 0


def test_loading_a_new_set_moves_lookups_and_keeps_old_appeals(committed_app, tmp_path):
    with committed_app.app_context():
        staff = make_staff("operator")
        headers = bearer(staff)
        db.session.commit()
    client = committed_app.test_client()
    old = client.post("/api/v1/appeals", json=APPEAL, headers=headers).json
    assert old["sector"]["version"] == 1
    runner = committed_app.test_cli_runner()
    res = runner.invoke(args=["sectors", "load", str(grid_file(tmp_path))])
    assert res.exit_code == 0, res.output
    assert "version 2" in res.output
    lookup = client.get("/api/v1/sectors/lookup?lat=50.015&lon=10.005").json
    assert lookup["sector"]["code"] == "B1" and lookup["sector"]["version"] == 2
    assert client.get("/api/v1/sectors/lookup?lat=43.2975&lon=68.251").json["sector"] is None
    assert [f["id"] for f in client.get("/api/v1/sectors").json["features"]] == ["A1", "A2", "B1", "B2"]
    new = client.post("/api/v1/appeals", json={**APPEAL, "lat": 50.005, "lon": 10.015}, headers=headers).json
    assert new["sector"]["code"] == "A2"
    kept = client.get(f"/api/v1/appeals/{old['id']}", headers=headers).json
    assert kept["sector"] == old["sector"]


def test_users_create_and_demo_seed(committed_app):
    runner = committed_app.test_cli_runner()
    res = runner.invoke(args=["users", "create", "--username", "aliya", "--role", "unit_head",
                              "--password", "a-long-password", "--unit", "U3"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(args=["users", "create", "--username", "x", "--role", "field_staff",
                              "--password", "a-long-password"])
    assert res.exit_code != 0 and "unit_required" in res.output
    res = runner.invoke(args=["demo", "seed", "--appeals", "40"])
    assert res.exit_code == 0, res.output
    with committed_app.app_context():
        assert db.session.scalar(select(func.count(Appeal.id))) == 40
        roles = set(db.session.scalars(select(Staff.role)))
        assert roles == set(ROLES)
        statuses = set(db.session.scalars(select(Appeal.status)))
        assert {"assigned", "closed"} <= statuses  # on-duty demo crews get work at intake
    again = runner.invoke(args=["demo", "seed", "--appeals", "40", "--top-up"])
    assert again.exit_code == 0
    with committed_app.app_context():
        assert db.session.scalar(select(func.count(Appeal.id))) == 40


def test_flask_serve_really_serves(backend, tmp_path):
    """`make run` ends in `flask serve`; it must start a server, not print URLs and exit."""
    import os
    import socket
    import subprocess
    import sys
    import time

    import pytest
    import requests

    if backend.name != "spatialite":
        pytest.skip("the embedded default is SpatiaLite")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "DATABASE_URL": backend.copy("serve"), "JAUAP_INSTANCE_PATH": str(tmp_path),
           "FLASK_APP": "server:create_app"}
    proc = subprocess.Popen([sys.executable, "-m", "flask", "serve", "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if requests.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                if proc.poll() is not None:
                    raise AssertionError(proc.stdout.read().decode()) from None
                time.sleep(0.2)
        else:
            raise AssertionError("flask serve did not answer within 20 s")
        assert requests.get(f"http://127.0.0.1:{port}/api/v1/topics", timeout=2).status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=10)
