"""Read and validate a sector file (an RFC 7946 GeoJSON FeatureCollection).

Two kinds of problems are told apart:

* **Structural** problems mean the document cannot be understood: bad JSON, not
  a FeatureCollection, a member of the wrong type, a coordinate that is not a
  finite number in range, a missing / malformed / duplicate ``code``, a missing
  name, an unsupported ``crs``. They raise :class:`SectorFileError` at once,
  naming the feature (``features[3] (code 'S4')``) and what is wrong.
* **Geometric** problems mean the document is readable but the sectors are not
  usable as they are: a ring that is not closed or too short, an invalid polygon
  (self-intersection, ...), two sectors overlapping. They are collected in
  :attr:`ValidationReport.errors` so a command line tool can list all of them.
  Gaps (holes in the union of the sectors) are only warnings: a point in a gap
  is routed to the nearest sector within tolerance, or to the unrouted queue.

Areas are geodesic (WGS84), in square metres.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import shapely
from shapely.geometry import MultiPolygon, Polygon
from shapely.validation import explain_validity

from geo.distance import geodesic_area_m2

__all__ = [
    "AREA_TOLERANCE_M2",
    "CODE_PATTERN",
    "LANGUAGES",
    "SectorFeature",
    "SectorFileError",
    "ValidationReport",
    "read_sector_file",
    "validate_sector_collection",
]

#: Sector and unit codes: short, URL- and room-name-safe (they end up in ``sector:<code>``).
CODE_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,16}$")

#: Languages every sector must be named in.
LANGUAGES = ("kk", "ru", "en")

#: Overlaps and gaps no larger than this (m²) are float noise, not mistakes.
AREA_TOLERANCE_M2 = 1.0

# Names under which GeoJSON producers declare lon/lat WGS84. RFC 7946 dropped the
# ``crs`` member; old files (GDAL, QGIS) still write one of these.
_WGS84_CRS_NAMES = frozenset(
    {
        "urn:ogc:def:crs:ogc:1.3:crs84",
        "urn:ogc:def:crs:ogc::crs84",
        "ogc:crs84",
        "crs84",
        "epsg:4326",
        "urn:ogc:def:crs:epsg::4326",
        "urn:ogc:def:crs:epsg:4326",
        "http://www.opengis.net/def/crs/ogc/1.3/crs84",
        "http://www.opengis.net/def/crs/epsg/0/4326",
    }
)


class SectorFileError(ValueError):
    """A sector file that cannot be read as a sector collection (structural error)."""


@dataclass(frozen=True)
class SectorFeature:
    """One sector of a validated file.

    ``names`` has the keys ``kk``, ``ru`` and ``en``; ``unit`` is the code of the
    unit that serves the sector (the ``unit`` property, or the sector code);
    ``geometry`` is always a MultiPolygon (a Polygon is promoted) in lon/lat;
    ``properties`` is a copy of the feature's GeoJSON properties; ``area_m2`` is
    the geodesic area.
    """

    code: str
    names: dict[str, str] = field(hash=False)
    unit: str
    geometry: MultiPolygon
    properties: dict[str, Any] = field(hash=False, repr=False)
    area_m2: float = 0.0


@dataclass
class ValidationReport:
    """The outcome of validating a sector collection.

    ``sectors`` holds the features that passed every per-feature check (a feature
    with an invalid geometry is left out and explained in ``errors``).
    ``overlaps`` lists ``(code_a, code_b, area_m2)`` for every pair of sectors
    sharing more than :data:`AREA_TOLERANCE_M2`; each is also an error.
    ``gaps`` lists holes in the union of the sectors as dicts with ``area_m2``,
    ``lon`` and ``lat`` (a point inside the hole); each is also a warning.
    """

    sectors: list[SectorFeature] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    overlaps: list[tuple[str, str, float]] = field(default_factory=list)
    gaps: list[dict[str, float]] = field(default_factory=list)
    source: str | None = None

    @property
    def ok(self) -> bool:
        """True when there are no errors (warnings are allowed)."""
        return not self.errors

    @property
    def total_area_m2(self) -> float:
        """Sum of the sectors' geodesic areas in m²."""
        return sum(s.area_m2 for s in self.sectors)

    @property
    def codes(self) -> list[str]:
        """The codes of the valid sectors, in file order."""
        return [s.code for s in self.sectors]

    @property
    def bounds(self) -> tuple[float, float, float, float] | None:
        """``(min_lon, min_lat, max_lon, max_lat)`` of the valid sectors, or None if there are none."""
        if not self.sectors:
            return None
        return tuple(float(v) for v in shapely.total_bounds([s.geometry for s in self.sectors]))  # type: ignore[return-value]

    def summary(self) -> list[str]:
        """Human readable lines: one per sector, then errors, warnings and a verdict."""
        head = f"{len(self.sectors)} sector(s), total area {self.total_area_m2 / 1e6:.2f} km²"
        if self.bounds is not None:
            # Printed so that a file with lat/lon swapped is noticed (it passes the range checks).
            x0, y0, x1, y1 = self.bounds
            head += f", lon {x0:.4f}..{x1:.4f}, lat {y0:.4f}..{y1:.4f}"
        lines = [f"{self.source}: {head}" if self.source else head]
        for s in self.sectors:
            lines.append(f"  {s.code:<16} unit {s.unit:<16} {s.area_m2 / 1e6:8.3f} km²  {s.names['en']}")
        lines.extend(f"ERROR: {e}" for e in self.errors)
        lines.extend(f"WARNING: {w}" for w in self.warnings)
        verdict = "valid" if self.ok else f"INVALID ({len(self.errors)} error(s))"
        lines.append(f"{verdict}, {len(self.warnings)} warning(s)")
        return lines


def read_sector_file(path: str | Path) -> ValidationReport:
    """Read a GeoJSON sector file and validate it.

    Raises SectorFileError if the file cannot be read, is not JSON, or has a
    structural error; geometric problems are in the returned report's ``errors``.
    """
    path = Path(path)
    try:
        # utf-8-sig: tolerate the byte order mark some Windows editors add.
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise SectorFileError(f"{path}: cannot read the file: {exc}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SectorFileError(
            f"{path}: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from exc
    report = validate_sector_collection(data)
    report.source = str(path)
    return report


def validate_sector_collection(data: Any) -> ValidationReport:
    """Validate a parsed GeoJSON FeatureCollection of sector polygons.

    Raises SectorFileError on structural errors; returns a report whose
    ``errors`` / ``warnings`` hold geometric problems, overlaps and gaps.
    """
    if not isinstance(data, dict):
        raise SectorFileError(f"the document must be a GeoJSON object, got {_json_type(data)}")
    if data.get("type") != "FeatureCollection":
        raise SectorFileError(f"the document must be a FeatureCollection, got type {data.get('type')!r}")
    _check_crs(data.get("crs"))
    features = data.get("features")
    if not isinstance(features, list):
        raise SectorFileError(f"'features' must be an array, got {_json_type(features)}")

    report = ValidationReport()
    if not features:
        report.errors.append("the collection has no features")
        return report

    seen: dict[str, int] = {}
    for index, feature in enumerate(features):
        sector = _read_feature(index, feature, seen, report)
        if sector is not None:
            report.sectors.append(sector)

    _check_overlaps(report)
    _check_gaps(report)
    return report


# --- one feature ---------------------------------------------------------------------------------


def _read_feature(
    index: int, feature: Any, seen: dict[str, int], report: ValidationReport
) -> SectorFeature | None:
    """Check one feature; return it, or None if its geometry is unusable (error recorded)."""
    where = f"features[{index}]"
    if not isinstance(feature, dict) or feature.get("type") != "Feature":
        got = feature.get("type") if isinstance(feature, dict) else _json_type(feature)
        raise SectorFileError(f"{where}: must be a GeoJSON Feature, got {got!r}")
    props = feature.get("properties")
    if not isinstance(props, dict):
        raise SectorFileError(f"{where}: 'properties' must be an object, got {_json_type(props)}")

    # The code first, so every later message can name the sector.
    code = props.get("code")
    if code is None:
        raise SectorFileError(f"{where}: property 'code' is required")
    if not isinstance(code, str) or not CODE_PATTERN.match(code):
        raise SectorFileError(
            f"{where}: property 'code' must be 1-16 characters of A-Z a-z 0-9 _ -, got {code!r}"
        )
    where = f"features[{index}] (code {code!r})"
    # Codes differing only in case would be told apart by the database but not by
    # people reading "s1" and "S1" on a dispatcher's screen: refuse them too.
    key = code.casefold()
    if key in seen:
        raise SectorFileError(f"{where}: duplicate code, already used by features[{seen[key]}]")
    seen[key] = index

    names = _read_names(where, props)
    unit = props.get("unit", code)
    if not isinstance(unit, str) or not CODE_PATTERN.match(unit):
        raise SectorFileError(
            f"{where}: property 'unit' must be 1-16 characters of A-Z a-z 0-9 _ -, got {unit!r}"
        )

    geometry = _read_geometry(where, feature.get("geometry"), report)
    if geometry is None:
        return None
    return SectorFeature(
        code=code,
        names=names,
        unit=unit,
        geometry=geometry,
        properties=dict(props),
        area_m2=geodesic_area_m2(geometry),
    )


def _read_names(where: str, props: dict[str, Any]) -> dict[str, str]:
    """The kk/ru/en names from ``name_kk``... or a ``name`` object; all three required."""
    name_obj = props.get("name")
    if name_obj is not None and not isinstance(name_obj, dict):
        # A plain string 'name' is common in GeoJSON; it is just not enough here.
        name_obj = None
    names: dict[str, str] = {}
    missing = []
    for lang in LANGUAGES:
        value = props.get(f"name_{lang}")
        if value is None and name_obj is not None:
            value = name_obj.get(lang)
        if not isinstance(value, str) or not value.strip():
            missing.append(lang)
        else:
            names[lang] = value.strip()
    if missing:
        wanted = ", ".join(f"name_{lang}" for lang in missing)
        raise SectorFileError(f"{where}: missing or empty name(s): {wanted} (or 'name': {{kk, ru, en}})")
    return names


def _read_geometry(where: str, geom: Any, report: ValidationReport) -> MultiPolygon | None:
    """Build the MultiPolygon of a feature, or record why it is unusable and return None."""
    if not isinstance(geom, dict):
        raise SectorFileError(
            f"{where}: 'geometry' must be a Polygon or MultiPolygon, got {_json_type(geom)}"
        )
    gtype = geom.get("type")
    coords = geom.get("coordinates")
    if gtype == "Polygon":
        polygons = [coords]
    elif gtype == "MultiPolygon":
        if not isinstance(coords, list) or not coords:
            raise SectorFileError(f"{where}: MultiPolygon coordinates must be a non-empty array of polygons")
        polygons = coords
    else:
        raise SectorFileError(f"{where}: geometry type must be Polygon or MultiPolygon, got {gtype!r}")

    shapes: list[Polygon] = []
    usable = True
    for p_index, rings in enumerate(polygons):
        label = where if gtype == "Polygon" else f"{where} polygon {p_index}"
        if not isinstance(rings, list) or not rings:
            raise SectorFileError(f"{label}: polygon coordinates must be a non-empty array of rings")
        checked = []
        for r_index, ring in enumerate(rings):
            ring_label = f"{label} {'exterior ring' if r_index == 0 else f'hole {r_index}'}"
            positions = _read_ring(ring_label, ring)
            if len(positions) < 4:
                report.errors.append(f"{ring_label}: a ring needs at least 4 positions, has {len(positions)}")
                usable = False
            elif positions[0] != positions[-1]:
                first, last = list(positions[0]), list(positions[-1])
                report.errors.append(f"{ring_label}: ring is not closed (first {first} != last {last})")
                usable = False
            checked.append(positions)
        if usable:
            shapes.append(Polygon(checked[0], checked[1:]))
    if not usable:
        return None

    multi = MultiPolygon(shapes)
    if not multi.is_valid:
        report.errors.append(f"{where}: invalid geometry: {explain_validity(multi)}")
        return None
    if any(not p.exterior.is_ccw for p in shapes):
        # RFC 7946 says "should"; readers must still accept either orientation.
        report.warnings.append(
            f"{where}: exterior ring is clockwise; RFC 7946 recommends counter-clockwise (accepted)"
        )
    return multi


def _read_ring(label: str, ring: Any) -> list[tuple[float, float]]:
    """A ring's positions as (lon, lat) floats; structural problems raise."""
    if not isinstance(ring, list):
        raise SectorFileError(f"{label}: a ring must be an array of positions, got {_json_type(ring)}")
    out = []
    for i, pos in enumerate(ring):
        if not isinstance(pos, list) or len(pos) < 2:
            raise SectorFileError(f"{label} position {i}: must be an array [lon, lat], got {pos!r}")
        lon, lat = pos[0], pos[1]
        # bool is an int subclass in Python but never a coordinate.
        for value in (lon, lat):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise SectorFileError(f"{label} position {i}: coordinates must be numbers, got {pos!r}")
            if not math.isfinite(value):
                raise SectorFileError(f"{label} position {i}: coordinate is not finite, got {pos!r}")
        if not (-180 <= lon <= 180 and -90 <= lat <= 90):
            raise SectorFileError(
                f"{label} position {i}: out of range (lon must be in [-180, 180], lat in [-90, 90]; "
                f"GeoJSON order is [lon, lat]), got {pos!r}"
            )
        # Any altitude (third value) is dropped: sectors are 2D.
        out.append((float(lon), float(lat)))
    return out


def _check_crs(crs: Any) -> None:
    """Accept no ``crs`` member, or one naming lon/lat WGS84; anything else raises."""
    if crs is None:
        return
    name = None
    if isinstance(crs, dict) and isinstance(crs.get("properties"), dict):
        name = crs["properties"].get("name")
    if not isinstance(name, str) or name.strip().lower() not in _WGS84_CRS_NAMES:
        raise SectorFileError(
            f"unsupported 'crs' {json.dumps(crs, ensure_ascii=False)}: sector files must use "
            "lon/lat WGS84 (CRS84 / EPSG:4326); reproject the file or drop the 'crs' member"
        )


# --- the collection as a whole -------------------------------------------------------------------


def _check_overlaps(report: ValidationReport) -> None:
    """Record every pair of sectors sharing more than AREA_TOLERANCE_M2 as an error."""
    sectors = report.sectors
    if len(sectors) < 2:
        return
    geoms = [s.geometry for s in sectors]
    for g in geoms:
        shapely.prepare(g)
    tree = shapely.STRtree(geoms)
    pairs = tree.query(geoms, predicate="intersects")
    for a, b in sorted({(min(i, j), max(i, j)) for i, j in pairs.T.tolist() if i != j}):
        inter = shapely.intersection(geoms[a], geoms[b])
        # A shared border intersects as lines with zero area: skip the geodesic work.
        if inter.is_empty or inter.area == 0.0:
            continue
        area = geodesic_area_m2(inter)
        code_a, code_b = sectors[a].code, sectors[b].code
        if area > AREA_TOLERANCE_M2:
            report.overlaps.append((code_a, code_b, area))
            pt = inter.representative_point()
            report.errors.append(
                f"sectors {code_a!r} and {code_b!r} overlap by {area:,.1f} m² "
                f"(around lon {pt.x:.6f}, lat {pt.y:.6f})"
            )
        elif area > 0.0:
            report.warnings.append(
                f"sectors {code_a!r} and {code_b!r} overlap by {area:.3f} m² (negligible, ignored)"
            )


def _check_gaps(report: ValidationReport) -> None:
    """Record holes in the union of the sectors (and a split union) as warnings."""
    if not report.sectors:
        return
    union = shapely.union_all([s.geometry for s in report.sectors])
    parts = [p for p in shapely.get_parts(union) if p.geom_type == "Polygon"]
    if len(parts) > 1:
        report.warnings.append(f"the sectors form {len(parts)} separate areas, not one")
    for part in parts:
        for ring in part.interiors:
            hole = Polygon(ring)
            area = geodesic_area_m2(hole)
            if area <= AREA_TOLERANCE_M2:
                continue
            pt = hole.representative_point()
            report.gaps.append({"area_m2": area, "lon": pt.x, "lat": pt.y})
            report.warnings.append(
                f"gap of {area:,.1f} m² not covered by any sector (around lon {pt.x:.6f}, lat {pt.y:.6f})"
            )


def _json_type(value: Any) -> str:
    """The JSON name of a Python value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__
