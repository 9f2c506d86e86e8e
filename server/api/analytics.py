"""The analytics dashboard's data and its exports (CSV, XLSX). No personal data in either."""

from __future__ import annotations

from datetime import date
from typing import Literal

from flask import Response, jsonify, stream_with_context
from pydantic import Field

from server.api import bp
from server.api.common import viewer
from server.api.spec import endpoint
from server.models.types import utcnow
from server.schemas import Strict
from server.services import analytics, exports


class AnalyticsQuery(Strict):
    """Dashboard filters: a local-date range and comma-separated lists of codes."""

    date_from: date | None = None
    date_to: date | None = None
    type: str | None = Field(default=None, max_length=200)
    topic: str | None = Field(default=None, max_length=1000)
    sector: str | None = Field(default=None, max_length=200)
    channel: str | None = Field(default=None, max_length=200)
    period: Literal["day", "week", "month"] = "month"


class ExportQuery(AnalyticsQuery):
    """One view of the dashboard, as CSV or XLSX."""

    view: Literal["type", "topic", "sector", "channel", "trend", "backlog", "timeliness_sector",
                  "timeliness_unit", "ratings", "hotspots"]
    format: Literal["csv", "xlsx"] = "csv"


def _filters(query: AnalyticsQuery) -> analytics.Filters:
    return analytics.Filters.parse(query.date_from, query.date_to, query.type, query.topic, query.sector,
                                   query.channel)


@bp.get("/analytics/dashboard")
@endpoint(query=AnalyticsQuery, tags=["analytics"])
def analytics_dashboard(query: AnalyticsQuery):
    """Every dashboard figure for the filters: counts, trend, backlog, timeliness, quality, hotspots."""
    return jsonify(analytics.dashboard(_filters(query), utcnow(), role=viewer().role, period=query.period))


@bp.get("/analytics/export")
@endpoint(query=ExportQuery, tags=["analytics"])
def analytics_export(query: ExportQuery):
    """One view's rows as CSV (UTF-8 with BOM, streamed) or XLSX; formula-like cells are escaped."""
    header, rows = analytics.view_table(query.view, _filters(query), utcnow(), role=viewer().role,
                                        period=query.period)
    name = f"jauap-{query.view}-{utcnow():%Y%m%d}"
    if query.format == "xlsx":
        body = exports.xlsx_bytes(query.view, header, rows)
        return Response(body, mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                        headers={"Content-Disposition": f'attachment; filename="{name}.xlsx"'})
    return Response(stream_with_context(exports.csv_stream(header, rows)), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}.csv"',
                             "Content-Type": "text/csv; charset=utf-8"})
