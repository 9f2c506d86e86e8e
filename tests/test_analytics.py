"""The analytics dashboard: every aggregate on a small known dataset, filters, access, no personal data."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from server import geosql
from server.extensions import db
from server.models import Appeal, AppealEvent, Citizen, Feedback
from server.services import analytics, routing
from server.services.analytics import Filters

LOCAL = timedelta(hours=5)  # Asia/Almaty
NOW = datetime(2026, 5, 1, 12, tzinfo=UTC)
NAME, PHONE = "Aigerim Secretova", "+7 701 555 9876"


def at(month: int, day: int, hour: int = 10) -> datetime:
    """A local (UTC+5) wall-clock time in 2026, as UTC."""
    return datetime(2026, month, day, hour, tzinfo=UTC) - LOCAL


@pytest.fixture
def known(db_session):
    """Five appeals with known outcomes (see each line), three ratings, one extension."""
    sectors = {s.code: s for s in routing.current_sectors()}
    citizen = Citizen(channel="phone", handle=PHONE, name=NAME, phone=PHONE, language="kk", created_at=at(3, 1))
    db.session.add(citizen)
    db.session.flush()
    made = {}

    def add(key, typ, topic, channel, sector, created, due, status, answered=None, closed=None,
            lon=68.251049, lat=43.297512):
        appeal = Appeal(reg_no=f"TST-2026-{len(made) + 1:06d}", tracking_token=f"tok-{key}", type=typ,
                        topic_code=topic, urgency="emergency" if typ == "incident" else None,
                        description=f"Call {NAME} at {PHONE}", channel=channel, citizen_id=citizen.id,
                        location=geosql.point(lon, lat), sector_id=sectors[sector].id,
                        unit_id=sectors[sector].unit_id, status=status, created_at=created, updated_at=created,
                        due_at=due, answered_at=answered, closed_at=closed)
        db.session.add(appeal)
        db.session.flush()
        made[key] = appeal
        return appeal

    # a1: complaint answered on time, closed after 96 h
    add("a1", "complaint", "roads", "phone", "S1", at(3, 2), at(3, 20), "closed", at(3, 5), at(3, 6))
    # a2: complaint answered late (after an extension), closed after 216 h
    add("a2", "complaint", "roads", "telegram", "S2", at(3, 3), at(3, 10), "closed", at(3, 12), at(3, 12))
    # a3: emergency incident still open and overdue, elsewhere in town
    add("a3", "incident", "water_supply", "phone", "S1", at(3, 10), at(3, 10, 14), "on_site",
        lon=68.2701, lat=43.3101)
    # a4: consultation answered at first contact, closed after 24 h
    add("a4", "consultation", "roads", "phone", "S1", at(3, 15), at(4, 5), "closed", at(3, 15, 11), at(3, 16))
    # a5: gratitude (no deadline) answered later, in April, closed after 48 h
    add("a5", "gratitude", "water_supply", "whatsapp", "S2", at(4, 2), None, "closed", at(4, 3), at(4, 4))
    db.session.add_all([
        AppealEvent(appeal_id=made["a2"].id, kind="appeal.extended", actor_kind="system", created_at=at(3, 8),
                    data={"reason": "contractor"}),
        AppealEvent(appeal_id=made["a4"].id, kind="appeal.answered", from_status="routed", to_status="answered",
                    actor_kind="system", created_at=at(3, 15, 11), data={}),
        AppealEvent(appeal_id=made["a5"].id, kind="appeal.answered", from_status="verified", to_status="answered",
                    actor_kind="system", created_at=at(4, 3), data={}),
        Feedback(appeal_id=made["a1"].id, verdict="confirm", rating=5, created_at=at(3, 7)),
        Feedback(appeal_id=made["a2"].id, verdict="dispute", rating=1, created_at=at(3, 13)),
        Feedback(appeal_id=made["a4"].id, verdict="confirm", rating=4, created_at=at(3, 17)),
    ])
    db.session.flush()
    return made


def _counts(rows):
    return {r["key"]: r["count"] for r in rows}


def test_counts_by_every_dimension(known):
    f = Filters()
    assert _counts(analytics.counts(f, "type")) == {"complaint": 2, "incident": 1, "consultation": 1, "gratitude": 1}
    assert _counts(analytics.counts(f, "topic")) == {"roads": 3, "water_supply": 2}
    assert _counts(analytics.counts(f, "sector")) == {"S1": 3, "S2": 2}
    assert _counts(analytics.counts(f, "channel")) == {"phone": 3, "telegram": 1, "whatsapp": 1}


def test_trend_by_month_week_day(known):
    f = Filters()
    assert analytics.trend(f, "month") == [{"period": "2026-03", "received": 4, "open": 1},
                                           {"period": "2026-04", "received": 1, "open": 0}]
    weeks = analytics.trend(f, "week")
    # Mondays: 2 Mar (a1, a2), 9 Mar (a3), 9.. 15 Mar is a Sunday -> week of 9 Mar (a4), 30 Mar (a5)
    assert weeks == [{"period": "2026-03-02", "received": 2, "open": 0},
                     {"period": "2026-03-09", "received": 2, "open": 1},
                     {"period": "2026-03-30", "received": 1, "open": 0}]
    assert [r["period"] for r in analytics.trend(f, "day")] == ["2026-03-02", "2026-03-03", "2026-03-10",
                                                                "2026-03-15", "2026-04-02"]


def test_backlog_and_timeliness(known):
    f = Filters()
    backlog = analytics.backlog(f, NOW)
    assert (backlog["total"], backlog["open"], backlog["overdue"]) == (5, 1, 1)
    assert backlog["open_share"] == 0.2
    assert backlog["by_status"] == [{"key": "on_site", "count": 1}]
    tl = analytics.timeliness(f)
    assert (tl["closed"], tl["on_time"], tl["compliance"]) == (3, 2, 0.6667)
    assert {r["key"]: (r["closed"], r["on_time"]) for r in tl["by_sector"]} == {"S1": (2, 2), "S2": (1, 0)}
    assert {r["key"]: r["compliance"] for r in tl["by_unit"]} == {"U1": 1.0, "U2": 0.0}
    assert tl["median_hours_to_resolve"] == 72.0  # 24, 48, 96, 216
    assert tl["first_contact"] == {"eligible": 2, "resolved": 1, "rate": 0.5}
    assert tl["extension"] == {"with_deadline": 4, "extended": 1, "rate": 0.25}


def test_quality_and_hotspots(known):
    q = analytics.quality(Filters())
    assert q["rated"] == 3 and q["mean"] == 3.33
    assert q["distribution"] == {"1": 1, "2": 0, "3": 0, "4": 1, "5": 1}
    assert q["verdicts"] == {"confirm": 2, "dispute": 1}
    spots = analytics.hotspots(Filters())
    # a1, a2, a4 share a point (roads); water_supply has a3 and a5 at two places: no repeat there
    assert [(s["topic"], s["count"]) for s in spots] == [("roads", 3)]
    assert abs(spots[0]["lat"] - 43.2975) < 0.002 and abs(spots[0]["lon"] - 68.2510) < 0.003


def test_filters_change_every_figure(known):
    complaints = Filters.parse(type="complaint")
    assert analytics.backlog(complaints, NOW)["total"] == 2
    assert analytics.timeliness(complaints)["compliance"] == 0.5
    assert analytics.quality(complaints)["rated"] == 2
    assert _counts(analytics.counts(Filters.parse(channel="phone"), "type")) == {
        "complaint": 1, "incident": 1, "consultation": 1}
    assert _counts(analytics.counts(Filters.parse(sector="S2"), "topic")) == {"roads": 1, "water_supply": 1}
    assert analytics.backlog(Filters.parse(topic="water_supply"), NOW)["total"] == 2
    march = Filters.parse(date_from="2026-03-01", date_to="2026-03-31")
    assert analytics.backlog(march, NOW)["total"] == 4
    # the local day: a1 was registered 2 Mar 10:00 in Turkestan (05:00 UTC)
    assert analytics.backlog(Filters.parse(date_from="2026-03-02", date_to="2026-03-02"), NOW)["total"] == 1
    assert analytics.hotspots(Filters.parse(channel="telegram")) == []


def test_locations_rounded_for_analysts_in_the_query(known):
    coarse = list(analytics.backlog_rows(Filters(), NOW, "analyst"))
    fine = list(analytics.backlog_rows(Filters(), NOW, "inspector"))
    assert [r[9:] for r in coarse] == [[43.31, 68.27]]  # 43.3101, 68.2701 to 3 decimals (~100 m)
    assert [r[9:] for r in fine] == [[43.3101, 68.2701]]
    assert coarse[0][8] == "yes"  # overdue


@pytest.mark.parametrize("role", ["analyst", "pr_manager"])
def test_dashboard_api_has_no_personal_data(known, client, as_role, role):
    _staff, headers = as_role(role)
    res = client.get("/api/v1/analytics/dashboard?period=week", headers=headers)
    assert res.status_code == 200, res.json
    text = json.dumps(res.json)
    for secret in (NAME, PHONE, "Secretova", "555 9876", "Call "):
        assert secret not in text
    assert res.json["backlog"]["open"] == 1
    rows = res.json["oldest_open"]["rows"]
    assert rows[0][9:] == [43.31, 68.27]
    filtered = client.get("/api/v1/analytics/dashboard?type=complaint", headers=headers).json
    assert filtered["backlog"]["total"] == 2 != res.json["backlog"]["total"]


def test_dashboard_roles(known, client, as_role):
    for role, status in (("field_staff", 403), ("operator", 403), ("dispatcher", 403), ("methodologist", 200),
                         ("qc_analyst", 200), ("inspector", 200), ("admin", 200)):
        _s, headers = as_role(role)
        assert client.get("/api/v1/analytics/dashboard", headers=headers).status_code == status, role
    assert client.get("/api/v1/analytics/dashboard").status_code == 401


def test_bad_filters_are_refused(known, client, as_role):
    _s, headers = as_role("analyst")
    assert client.get("/api/v1/analytics/dashboard?date_from=yesterday", headers=headers).status_code in (400, 422)
    assert client.get("/api/v1/analytics/dashboard?period=year", headers=headers).status_code in (400, 422)
    assert client.get("/api/v1/analytics/export?view=people", headers=headers).status_code in (400, 422)


def test_policy_roles_match_the_service():
    from server.security import ANALYTICS_ROLES, POLICY

    assert ANALYTICS_ROLES == analytics.ANALYTICS_ROLES
    assert POLICY["api.analytics_dashboard"] == analytics.ANALYTICS_ROLES
    assert "analyst" in analytics.COARSE_ROLES and "pr_manager" in analytics.COARSE_ROLES


def test_page_served_to_analysts(client, as_role):
    _s, headers = as_role("analyst")
    res = client.get("/analytics/", headers=headers)
    assert res.status_code == 200 and b"analytics.js" in res.data
    assert client.get("/analytics/analytics.js").status_code == 200


def test_demo_year_distributions_and_state_machine(db_session):
    """~2,000 demo appeals: a year of plausible figures, every history valid against the state machine."""
    import random

    from sqlalchemy import func, select

    from server.cli import demo_staff
    from server.services.demo import seed_year, state_machine_problems

    demo_staff(NOW)
    db.session.commit()
    seen = []
    seed_year(2000, now=NOW, rng=random.Random(7), progress=lambda done, total: seen.append(done), batch=700)
    assert seen == [700, 1400, 2000]
    assert state_machine_problems() == []
    f = Filters()
    backlog = analytics.backlog(f, NOW)
    assert backlog["total"] == 2000
    assert 0.002 <= backlog["open_share"] <= 0.03  # the seed: ~400 of 42,000 open
    types = _counts(analytics.counts(f, "type"))
    assert set(types) == {"consultation", "incident", "proposal", "complaint", "gratitude"}
    assert max(types, key=types.get) == "complaint" and types["gratitude"] < types["proposal"]
    channels = _counts(analytics.counts(f, "channel"))
    assert 0.45 < channels["phone"] / 2000 < 0.65  # 109 calls lead; the chats follow
    assert {"telegram", "whatsapp", "instagram", "facebook"} <= set(channels)
    assert len(_counts(analytics.counts(f, "sector"))) == 6
    months = analytics.trend(f, "month")
    assert len(months) >= 12
    heating = {r["period"][5:]: r["received"] for r in analytics.trend(Filters.parse(topic="heating"), "month")}
    water = {r["period"][5:]: r["received"] for r in analytics.trend(Filters.parse(topic="water_supply"), "month")}
    assert heating.get("01", 0) > 3 * heating.get("07", 0)  # heating in winter
    assert water.get("07", 0) > water.get("01", 0)  # water in summer
    statuses = _counts(analytics.counts(f, "status"))
    assert statuses["closed"] > 1700
    tl = analytics.timeliness(f)
    assert 0.8 < tl["compliance"] < 0.99  # mostly on time, some breached
    assert 0.7 < tl["first_contact"]["rate"] < 0.95
    assert tl["extension"]["extended"] > 0
    q = analytics.quality(f)
    assert q["rated"] > 200 and 3.8 < q["mean"] < 4.6 and q["verdicts"]["dispute"] > 0
    assert analytics.hotspots(f)  # repeated problems show up
    assert db.session.scalar(select(func.count(Feedback.id))) == q["rated"]
    # office hours are busier than the night (the line is open 24/7, though)
    hours = [(a.created_at + LOCAL).hour for a in db.session.scalars(select(Appeal))]
    assert sum(9 <= h < 13 for h in hours) > 5 * sum(1 <= h < 5 for h in hours) > 0
    # A disputed appeal was reopened as services.sla.reopen_cycle does it: a fresh term from the reopening,
    # the first cycle's due time and outcome kept in the event.
    reopens = list(db.session.scalars(select(AppealEvent).where(AppealEvent.kind == "appeal.reopened")))
    assert reopens
    for event in reopens:
        appeal = db.session.get(Appeal, event.appeal_id)
        assert {"previous_due_at", "previous_sla_state", "due_at"} <= set(event.data), event.data
        if appeal.due_at is not None:
            assert appeal.due_at > event.created_at
            assert event.data["due_at"] == appeal.due_at.isoformat()
            assert event.data["previous_sla_state"] in ("met", "breached")
