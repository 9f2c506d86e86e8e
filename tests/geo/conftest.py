"""Fixtures for the geo tests: plain pytest, no Flask app needed."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# ``from tests.geo.points import ...`` must work however pytest was started
# (``pytest`` does not put the repository root on sys.path, ``python -m pytest`` does).
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from geo import SectorIndex, read_sector_file  # noqa: E402

TURKESTAN = ROOT / "sectors_geojson" / "turkestan.geojson"


@pytest.fixture(scope="session")
def turkestan_path() -> Path:
    return TURKESTAN


@pytest.fixture(scope="session")
def turkestan_report():
    return read_sector_file(TURKESTAN)


@pytest.fixture(scope="session")
def turkestan_index(turkestan_report):
    return SectorIndex(turkestan_report.sectors, tolerance_m=150.0)
