"""geo.sectors: reading and validating sector files."""

from __future__ import annotations

import copy
import json
import math
import time

import pytest
from shapely.geometry import MultiPolygon

from geo import SectorFileError, read_sector_file, validate_sector_collection
from geo.sectors import AREA_TOLERANCE_M2


def square(x0, y0, size=0.01):
    """A closed counter-clockwise square ring (rounded, so neighbours share exact coordinates)."""
    x0, y0, x1, y1 = (round(v, 9) for v in (x0, y0, x0 + size, y0 + size))
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]


def feature(code, rings, **props):
    p = {"code": code, "name_kk": f"{code} kk", "name_ru": f"{code} ru", "name_en": f"{code} en"}
    p.update(props)
    return {"type": "Feature", "properties": p, "geometry": {"type": "Polygon", "coordinates": rings}}


def collection(*features, **members):
    return {"type": "FeatureCollection", "features": list(features), **members}


def two_squares():
    """Two sectors sharing an edge exactly."""
    return collection(feature("A", [square(10.0, 50.0)]), feature("B", [square(10.01, 50.0)]))


# --- the real file ---------------------------------------------------------------------------------


def test_turkestan_file_is_valid(turkestan_report):
    r = turkestan_report
    assert r.ok, r.errors
    assert r.errors == [] and r.overlaps == [] and r.gaps == []
    assert r.warnings == []
    assert [s.code for s in r.sectors] == ["S1", "S2", "S3", "S4", "S5", "S6"]
    assert [s.unit for s in r.sectors] == ["U1", "U2", "U3", "U4", "U5", "U6"]
    # Tens to a few hundreds of km² for a city of Turkestan's size.
    assert 20e6 < r.total_area_m2 < 500e6
    for s in r.sectors:
        assert isinstance(s.geometry, MultiPolygon) and s.geometry.is_valid
        assert all(s.names[lang].strip() for lang in ("kk", "ru", "en"))
        assert 6 <= len(s.geometry.geoms[0].exterior.coords) - 1 <= 12
        assert s.area_m2 > 1e6
        assert s.properties["code"] == s.code


def test_turkestan_file_covers_the_city_and_the_mausoleum(turkestan_report):
    from shapely import union_all
    from shapely.geometry import Point

    union = union_all([s.geometry for s in turkestan_report.sectors])
    minx, miny, maxx, maxy = union.bounds
    assert 68.15 <= minx < 68.20 and 68.30 < maxx <= 68.35
    assert 43.23 <= miny < 43.27 and 43.32 < maxy <= 43.36
    assert union.covers(Point(68.2719, 43.2927))  # Khoja Ahmed Yasawi mausoleum


def test_turkestan_file_validates_fast(turkestan_path):
    t0 = time.perf_counter()
    read_sector_file(turkestan_path)
    assert time.perf_counter() - t0 < 1.0


def test_summary_is_readable(turkestan_report):
    lines = turkestan_report.summary()
    assert "6 sector(s)" in lines[0] and "km²" in lines[0]
    # Bounds are shown so that a file with lat/lon swapped is noticed.
    assert "lon 68.1600..68.3400, lat 43.2400..43.3500" in lines[0]
    assert turkestan_report.bounds == pytest.approx((68.16, 43.24, 68.34, 43.35))
    assert any(line.strip().startswith("S3") for line in lines)
    assert lines[-1].startswith("valid")


# --- structure: SectorFileError ----------------------------------------------------------------------


def test_malformed_json_file(tmp_path):
    path = tmp_path / "broken.geojson"
    path.write_text('{"type": "FeatureCollection", "features": [', encoding="utf-8")
    with pytest.raises(SectorFileError, match=r"not valid JSON.*line 1"):
        read_sector_file(path)


def test_missing_file(tmp_path):
    with pytest.raises(SectorFileError, match="cannot read"):
        read_sector_file(tmp_path / "nope.geojson")


def test_file_with_bom_and_source(tmp_path):
    path = tmp_path / "bom.geojson"
    path.write_text(json.dumps(two_squares()), encoding="utf-8-sig")
    report = read_sector_file(path)
    assert report.ok and report.source == str(path)
    assert report.summary()[0].startswith(str(path))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "must be a GeoJSON object"),
        ({"type": "Feature", "geometry": None, "properties": {}}, "must be a FeatureCollection"),
        ({"type": "FeatureCollection"}, "'features' must be an array"),
        ({"type": "FeatureCollection", "features": {}}, "'features' must be an array"),
    ],
)
def test_not_a_feature_collection(data, message):
    with pytest.raises(SectorFileError, match=message):
        validate_sector_collection(data)


def test_member_that_is_not_a_feature_is_named():
    data = two_squares()
    data["features"].append({"type": "Polygon", "coordinates": [square(0, 0)]})
    with pytest.raises(SectorFileError, match=r"features\[2\]: must be a GeoJSON Feature"):
        validate_sector_collection(data)


def test_wrong_geometry_type_names_the_feature():
    data = two_squares()
    data["features"][1]["geometry"] = {"type": "Point", "coordinates": [10.0, 50.0]}
    expected = r"features\[1\] \(code 'B'\).*Polygon or MultiPolygon.*'Point'"
    with pytest.raises(SectorFileError, match=expected):
        validate_sector_collection(data)


def test_null_geometry():
    data = two_squares()
    data["features"][0]["geometry"] = None
    with pytest.raises(SectorFileError, match=r"features\[0\] \(code 'A'\).*'geometry'"):
        validate_sector_collection(data)


def test_nan_coordinate():
    data = two_squares()
    data["features"][1]["geometry"]["coordinates"][0][2] = [math.nan, 50.01]
    expected = r"features\[1\] \(code 'B'\) exterior ring position 2.*not finite"
    with pytest.raises(SectorFileError, match=expected):
        validate_sector_collection(data)


def test_nan_literal_in_a_file(tmp_path):
    text = json.dumps(two_squares()).replace("50.01", "NaN", 1)
    path = tmp_path / "nan.geojson"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SectorFileError, match="not finite"):
        read_sector_file(path)


@pytest.mark.parametrize(
    ("position", "message"),
    [
        (["10", 50.0], "must be numbers"),
        ([True, 50.0], "must be numbers"),
        ([10.0], r"must be an array \[lon, lat\]"),
        ([50.0, 100.0], "out of range"),  # lat 100: probably lat/lon swapped
        ([-181.0, 50.0], "out of range"),
        ([10.0, math.inf], "not finite"),
    ],
)
def test_bad_positions(position, message):
    data = two_squares()
    data["features"][0]["geometry"]["coordinates"][0][1] = position
    with pytest.raises(SectorFileError, match=message):
        validate_sector_collection(data)


def test_missing_code():
    data = two_squares()
    del data["features"][1]["properties"]["code"]
    with pytest.raises(SectorFileError, match=r"features\[1\]: property 'code' is required"):
        validate_sector_collection(data)


@pytest.mark.parametrize("code", ["", "S 1", "S1/2", "x" * 17, 7, "Ж1"])
def test_malformed_code(code):
    data = two_squares()
    data["features"][0]["properties"]["code"] = code
    with pytest.raises(SectorFileError, match=r"features\[0\]: property 'code' must be"):
        validate_sector_collection(data)


def test_duplicate_code():
    data = two_squares()
    data["features"][1]["properties"]["code"] = "A"
    with pytest.raises(SectorFileError, match=r"features\[1\] \(code 'A'\): duplicate code.*features\[0\]"):
        validate_sector_collection(data)


def test_codes_differing_only_in_case_are_duplicates():
    data = two_squares()
    data["features"][1]["properties"]["code"] = "a"
    with pytest.raises(SectorFileError, match="duplicate code"):
        validate_sector_collection(data)


@pytest.mark.parametrize("missing", ["name_kk", "name_ru", "name_en"])
def test_missing_name(missing):
    data = two_squares()
    del data["features"][0]["properties"][missing]
    expected = rf"features\[0\] \(code 'A'\): missing or empty name\(s\): {missing}"
    with pytest.raises(SectorFileError, match=expected):
        validate_sector_collection(data)


def test_blank_name():
    data = two_squares()
    data["features"][0]["properties"]["name_ru"] = "   "
    with pytest.raises(SectorFileError, match="name_ru"):
        validate_sector_collection(data)


def test_names_as_an_object():
    data = two_squares()
    props = data["features"][0]["properties"]
    for lang in ("kk", "ru", "en"):
        del props[f"name_{lang}"]
    props["name"] = {"kk": "Бірінші", "ru": "Первый", "en": "First"}
    report = validate_sector_collection(data)
    assert report.ok
    assert report.sectors[0].names == {"kk": "Бірінші", "ru": "Первый", "en": "First"}


def test_unit_defaults_to_the_code_and_is_checked():
    data = two_squares()
    data["features"][1]["properties"]["unit"] = "U-9"
    report = validate_sector_collection(data)
    assert [s.unit for s in report.sectors] == ["A", "U-9"]
    data["features"][1]["properties"]["unit"] = "no spaces"
    with pytest.raises(SectorFileError, match=r"features\[1\] \(code 'B'\): property 'unit'"):
        validate_sector_collection(data)


def test_properties_must_be_an_object():
    data = two_squares()
    data["features"][0]["properties"] = None
    with pytest.raises(SectorFileError, match=r"features\[0\]: 'properties' must be an object"):
        validate_sector_collection(data)


@pytest.mark.parametrize(
    "name",
    ["urn:ogc:def:crs:OGC:1.3:CRS84", "EPSG:4326", "urn:ogc:def:crs:EPSG::4326", "OGC:CRS84"],
)
def test_wgs84_crs_is_accepted(name):
    data = two_squares()
    data["crs"] = {"type": "name", "properties": {"name": name}}
    assert validate_sector_collection(data).ok


@pytest.mark.parametrize(
    "crs",
    [
        {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::3857"}},
        {"type": "name", "properties": {"name": "EPSG:32642"}},
        {"type": "link", "properties": {"href": "http://example.com/crs"}},
        "EPSG:4326",
    ],
)
def test_other_crs_is_refused(crs):
    data = two_squares()
    data["crs"] = crs
    with pytest.raises(SectorFileError, match="unsupported 'crs'"):
        validate_sector_collection(data)


# --- geometry: report.errors -------------------------------------------------------------------------


def test_non_closed_ring():
    data = two_squares()
    data["features"][1]["geometry"]["coordinates"][0][-1] = [10.01, 50.0005]
    report = validate_sector_collection(data)
    assert not report.ok
    assert report.errors == [
        "features[1] (code 'B') exterior ring: ring is not closed "
        "(first [10.01, 50.0] != last [10.01, 50.0005])"
    ]
    assert [s.code for s in report.sectors] == ["A"]


def test_ring_with_too_few_positions():
    data = two_squares()
    data["features"][0]["geometry"]["coordinates"][0] = [[10.0, 50.0], [10.01, 50.0], [10.0, 50.0]]
    report = validate_sector_collection(data)
    assert "features[0] (code 'A') exterior ring: a ring needs at least 4 positions, has 3" in report.errors


def test_self_intersecting_bowtie():
    bowtie = [[20.0, 10.0], [20.01, 10.01], [20.01, 10.0], [20.0, 10.01], [20.0, 10.0]]
    data = collection(feature("OK", [square(30.0, 10.0)]), feature("BOW", [bowtie]))
    report = validate_sector_collection(data)
    assert not report.ok
    assert len(report.errors) == 1
    assert report.errors[0].startswith("features[1] (code 'BOW'): invalid geometry: Self-intersection")
    assert [s.code for s in report.sectors] == ["OK"]


def test_all_geometric_errors_are_listed_together():
    bowtie = [[20.0, 10.0], [20.01, 10.01], [20.01, 10.0], [20.0, 10.01], [20.0, 10.0]]
    open_ring = square(40.0, 10.0)[:-1]
    data = collection(feature("A", [bowtie]), feature("B", [open_ring]), feature("C", [square(50.0, 10.0)]))
    report = validate_sector_collection(data)
    assert len(report.errors) == 2
    assert "code 'A'" in report.errors[0] and "code 'B'" in report.errors[1]


def test_hole_in_a_polygon_is_checked_too():
    outer = square(10.0, 50.0, 0.02)
    hole = [[10.005, 50.005], [10.005, 50.015], [10.015, 50.015], [10.015, 50.005]]  # not closed
    report = validate_sector_collection(collection(feature("A", [outer, hole])))
    assert report.errors == [
        "features[0] (code 'A') hole 1: ring is not closed (first [10.005, 50.005] != last [10.015, 50.005])"
    ]


def test_overlap_is_an_error_with_its_area():
    # A: 0.01 x 0.01 degree; B shifted by 0.004 east: they share a 0.006 x 0.01 strip.
    data = collection(feature("A", [square(10.0, 50.0)]), feature("B", [square(10.004, 50.0)]))
    report = validate_sector_collection(data)
    assert not report.ok
    assert len(report.overlaps) == 1
    a, b, area = report.overlaps[0]
    assert (a, b) == ("A", "B")
    # Near 50 N a degree of latitude is ~111.23 km, of longitude ~71.70 km.
    expected = (0.006 * 71_700) * (0.01 * 111_230)
    assert area == pytest.approx(expected, rel=0.02)
    assert "sectors 'A' and 'B' overlap by" in report.errors[0] and "m²" in report.errors[0]


def test_shared_edges_and_vertices_are_not_overlaps():
    data = collection(
        feature("A", [square(10.0, 50.0)]),
        feature("B", [square(10.01, 50.0)]),
        feature("C", [square(10.01, 50.01)]),  # shares an edge with B, one vertex with A
    )
    report = validate_sector_collection(data)
    assert report.ok and report.overlaps == [] and report.warnings == []


def test_separate_areas_are_a_warning():
    data = collection(feature("A", [square(10.0, 50.0)]), feature("B", [square(10.05, 50.0)]))
    report = validate_sector_collection(data)
    assert report.ok and report.warnings == ["the sectors form 2 separate areas, not one"]


def test_gap_is_a_warning_with_its_area():
    # A 3 x 3 block of squares without the middle one: one hole in the union.
    feats = [
        feature(f"C{i}{j}", [square(10.0 + 0.01 * i, 50.0 + 0.01 * j)])
        for i in range(3)
        for j in range(3)
        if (i, j) != (1, 1)
    ]
    report = validate_sector_collection(collection(*feats))
    assert report.ok
    assert len(report.gaps) == 1
    gap = report.gaps[0]
    assert gap["area_m2"] == pytest.approx(0.01 * 71_700 * 0.01 * 111_230, rel=0.02)
    assert 10.01 < gap["lon"] < 10.02 and 50.01 < gap["lat"] < 50.02
    assert len(report.warnings) == 1 and report.warnings[0].startswith("gap of ")


def test_a_sector_filling_a_hole_leaves_no_gap():
    outer = square(10.0, 50.0, 0.03)
    hole = square(10.01, 50.01, 0.01)[::-1]
    data = collection(feature("RING", [outer, hole]), feature("CORE", [square(10.01, 50.01, 0.01)]))
    report = validate_sector_collection(data)
    assert report.ok and report.gaps == [] and report.overlaps == []


def test_multipolygon_and_polygon_promotion():
    multi = {"type": "MultiPolygon", "coordinates": [[square(10.0, 50.0)], [square(10.02, 50.0)]]}
    data = collection(
        {"type": "Feature", "properties": feature("M", [])["properties"], "geometry": multi},
        feature("P", [square(10.01, 50.0)]),
    )
    report = validate_sector_collection(data)
    assert report.ok, report.errors
    m, p = report.sectors
    assert isinstance(m.geometry, MultiPolygon) and len(m.geometry.geoms) == 2
    assert isinstance(p.geometry, MultiPolygon) and len(p.geometry.geoms) == 1
    assert m.area_m2 == pytest.approx(2 * p.area_m2, rel=0.001)


def test_clockwise_ring_is_accepted_with_a_warning():
    data = two_squares()
    data["features"][0]["geometry"]["coordinates"][0].reverse()
    report = validate_sector_collection(data)
    assert report.ok
    assert report.warnings == [
        "features[0] (code 'A'): exterior ring is clockwise; RFC 7946 recommends counter-clockwise (accepted)"
    ]


def test_altitude_is_dropped():
    data = two_squares()
    data["features"][0]["geometry"]["coordinates"][0] = [[*p, 250.0] for p in square(10.0, 50.0)]
    report = validate_sector_collection(data)
    assert report.ok and not report.sectors[0].geometry.has_z


def test_empty_collection_is_an_error():
    report = validate_sector_collection(collection())
    assert not report.ok and report.errors == ["the collection has no features"]


def test_tiny_overlap_is_only_a_warning():
    # 1e-9 degree (0.07 mm) of overlap along a 1.1 km edge: under a tenth of a square metre.
    data = collection(feature("A", [square(10.0, 50.0)]), feature("B", [square(10.009999999, 50.0)]))
    report = validate_sector_collection(data)
    assert report.ok and report.overlaps == []
    assert any("negligible" in w for w in report.warnings)
    assert AREA_TOLERANCE_M2 == 1.0


def test_input_is_not_modified():
    data = two_squares()
    before = copy.deepcopy(data)
    validate_sector_collection(data)
    assert data == before
