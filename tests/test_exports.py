"""Exports: CSV (BOM, formula escaping, streamed) and XLSX with the same rows; no personal data."""

from __future__ import annotations

import csv
import io

import pytest
from openpyxl import load_workbook

from server.extensions import db
from server.models import Topic
from server.services import exports
from tests.test_analytics import NAME, PHONE, known  # noqa: F401  (fixture)


@pytest.mark.parametrize("value, expected", [
    ("=SUM(A1:A9)", "'=SUM(A1:A9)"), ("+7 701", "'+7 701"), ("-3", "'-3"), ("@cmd", "'@cmd"),
    ("\tx", "'\tx"), ("\rx", "'\rx"), ("roads", "roads"), ("", ""), (5, 5), (-3, -3), (None, None),
])
def test_escape_cell(value, expected):
    assert exports.escape_cell(value) == expected


def test_csv_stream_has_bom_and_escapes():
    text = "".join(exports.csv_stream(["a", "b"], [["=1+2", 3], ["ok", None]]))
    assert text.startswith("\ufeffa,b\r\n")
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    assert rows == [["a", "b"], ["'=1+2", "3"], ["ok", ""]]


def test_csv_streams_in_chunks():
    chunks = list(exports.csv_stream(["n"], ([i] for i in range(1200))))
    assert len(chunks) >= 3  # header, then every 500 rows: never the whole file in one string


def _csv(res):
    raw = res.get_data()
    assert raw.startswith(b"\xef\xbb\xbf")  # UTF-8 BOM
    return list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))


def _xlsx(res):
    book = load_workbook(io.BytesIO(res.get_data()), read_only=True)
    sheet = book.worksheets[0]
    return [["" if v is None else str(v) for v in row] for row in sheet.iter_rows(values_only=True)]


def _num(value: str):
    try:
        return float(value)
    except ValueError:
        return value


def _norm(rows):
    # CSV is text, XLSX keeps numbers: compare numbers by value
    return [[_num(v) for v in row] for row in rows]


@pytest.mark.parametrize("view", ["type", "topic", "sector", "channel", "trend", "backlog", "timeliness_sector",
                                  "timeliness_unit", "ratings", "hotspots"])
def test_every_view_exports_same_rows_in_csv_and_xlsx(known, client, as_role, view):  # noqa: F811
    _s, headers = as_role("analyst")
    res_csv = client.get(f"/api/v1/analytics/export?view={view}&format=csv", headers=headers)
    res_xlsx = client.get(f"/api/v1/analytics/export?view={view}&format=xlsx", headers=headers)
    assert res_csv.status_code == 200 and res_xlsx.status_code == 200
    assert res_csv.mimetype == "text/csv" and "attachment" in res_csv.headers["Content-Disposition"]
    rows_csv, rows_xlsx = _csv(res_csv), _xlsx(res_xlsx)
    assert _norm(rows_csv) == _norm(rows_xlsx)
    assert len(rows_csv) >= 2
    for blob in (res_csv.get_data(), res_xlsx.get_data()):
        assert NAME.encode() not in blob and PHONE.encode() not in blob
    text = res_csv.get_data().decode("utf-8-sig")
    assert NAME not in text and PHONE not in text and "Secretova" not in text


def test_export_matches_the_view_and_filters(known, client, as_role):  # noqa: F811
    _s, headers = as_role("pr_manager")
    rows = _csv(client.get("/api/v1/analytics/export?view=type&channel=phone", headers=headers))
    view = client.get("/api/v1/analytics/dashboard?channel=phone", headers=headers).json["counts"]["type"]
    assert rows[1:] == [[r["key"], str(r["count"])] for r in view]
    backlog = _csv(client.get("/api/v1/analytics/export?view=backlog", headers=headers))
    assert backlog[0][-2:] == ["lat", "lon"] and backlog[1][-2:] == ["43.31", "68.27"]


def test_formula_like_values_are_escaped_in_both_formats(known, client, as_role):  # noqa: F811
    from server.models import Appeal

    db.session.add(Topic(code="=HYPERLINK(1)", name_kk="x", name_ru="x", name_en="x"))
    db.session.flush()
    appeal = db.session.get(Appeal, known["a1"].id)
    appeal.topic_code = "=HYPERLINK(1)"
    db.session.flush()
    _s, headers = as_role("analyst")
    rows = _csv(client.get("/api/v1/analytics/export?view=topic", headers=headers))
    assert ["'=HYPERLINK(1)", "1"] in rows
    xl = _xlsx(client.get("/api/v1/analytics/export?view=topic&format=xlsx", headers=headers))
    assert ["'=HYPERLINK(1)", "1"] in xl


def test_exports_refused_to_other_roles(known, client, as_role):  # noqa: F811
    _s, headers = as_role("operator")
    assert client.get("/api/v1/analytics/export?view=type", headers=headers).status_code == 403
