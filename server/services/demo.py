"""Demo appeals: plausible, spread over the last weeks, some carried through their lifecycle."""

from __future__ import annotations

import itertools
import math
import random
import secrets
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from functools import partial

from flask import current_app
from geoalchemy2.shape import to_shape
from sqlalchemy import insert, select

from server import geosql
from server.extensions import db
from server.models import Appeal, AppealEvent, Citizen, Feedback, RegCounter, Staff, Topic
from server.schemas import AppealIn, CitizenIn
from server.services import audit, sla
from server.services.intake import register_appeal
from server.services.lifecycle import CITIZEN, SYSTEM, Actor, transition
from server.services.numbering import format_reg_no

# Weights close to the seed: most complaints are infrastructure, housing and communal services, social.
TYPE_WEIGHTS = {"complaint": 40, "incident": 25, "consultation": 20, "proposal": 10, "gratitude": 5}
TOPIC_WEIGHTS = {"roads": 12, "street_lighting": 8, "water_supply": 12, "sewerage": 6, "heating": 9, "gas": 5,
                 "waste_collection": 10, "landscaping": 6, "public_transport": 5, "housing_communal": 12,
                 "social_support": 8, "education": 3, "health": 2, "other": 2}
DESCRIPTIONS = {
    "kk": ["Көшеде шұңқыр бар, көліктер зақымдалуда.", "Аулада жарық жанбайды.", "Су үш күннен бері жоқ.",
           "Қоқыс уақытында шығарылмайды.", "Автобус кестесі сақталмайды."],
    "ru": ["Яма на дороге, машины повреждают колёса.", "Во дворе не горит освещение.", "Нет воды третий день.",
           "Мусор не вывозят вовремя.", "Автобус не ходит по расписанию.", "Прорыв канализации у дома."],
    "en": ["Pothole on the street.", "Street light is out in the yard.", "No water for three days."],
}
# Roughly the city's extent; some points fall just outside, to exercise nearest/unrouted routing.
BBOX = (68.17, 43.25, 68.33, 43.34)


def _pick(rng: random.Random, weights: dict[str, int]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def seed_appeals(count: int, *, now: datetime, rng: random.Random,
                 progress: Callable[[int, int], None] | None = None) -> int:
    """Register ``count`` demo appeals through the real intake, then move some along; commits in batches."""
    operators = list(db.session.scalars(select(Staff).where(Staff.role == "operator")))
    operator = Actor.of(operators[0]) if operators else SYSTEM
    topics = {t.code for t in db.session.scalars(select(Topic))}
    crew: dict[str, Actor] = {}
    for s in db.session.scalars(select(Staff).where(Staff.active.is_(True)).order_by(Staff.id.desc())):
        crew[s.role if s.role != "field_staff" else f"field:{s.unit_id}"] = Actor.of(s)
        crew[f"user:{s.id}"] = Actor.of(s)
    for i in range(count):
        lang = rng.choices(["kk", "ru", "en"], weights=[55, 42, 3])[0]
        appeal_type = _pick(rng, TYPE_WEIGHTS)
        topic = _pick(rng, TOPIC_WEIGHTS)
        if topic not in topics:
            topic = "other"
        created = now - timedelta(minutes=rng.randint(5, 60 * 24 * 30))
        data = AppealIn(
            type=appeal_type,
            topic=topic,
            description=rng.choice(DESCRIPTIONS[lang]),
            lat=round(rng.uniform(BBOX[1], BBOX[3]), 6),
            lon=round(rng.uniform(BBOX[0], BBOX[2]), 6),
            accuracy_m=rng.choice([5, 10, 20, 50]),
            channel=rng.choices(["phone", "telegram", "whatsapp", "instagram", "facebook", "web"],
                                weights=[55, 18, 14, 5, 3, 5])[0],
            urgency=rng.choice(["emergency", "urgent", "normal", "normal"]) if appeal_type == "incident" else None,
            citizen=CitizenIn(name=f"Demo Citizen {i + 1}", phone=f"+7 701 {rng.randint(1000000, 9999999)}",
                              language=lang),
        )
        result = register_appeal(data, actor=operator, now=created)
        _advance(result.appeal, rng, created, now, crew)
        if (i + 1) % 50 == 0 or i + 1 == count:
            db.session.commit()
            if progress:
                progress(i + 1, count)
    return count


def _advance(appeal, rng: random.Random, created: datetime, now: datetime, crew: dict[str, Actor]) -> None:
    """Carry an appeal some way through its life, with the unit's staff and plausible times."""
    field = crew.get(f"field:{appeal.unit_id}")
    if appeal.status not in ("routed", "assigned") or field is None:
        return
    actors = {"dispatcher": crew.get("dispatcher", SYSTEM), "field": field,
              "inspector": crew.get("inspector", SYSTEM)}
    plan = rng.choices(["routed", "assigned", "accepted", "resolved", "closed"], weights=[25, 20, 10, 10, 35])[0]
    path = [("assign", "dispatcher"), ("accept", "field"), ("arrive", "field"), ("resolve", "field"),
            ("verify", "inspector"), ("answer", "inspector"), ("close", "inspector")]
    stop = {"routed": 0, "assigned": 1, "accepted": 2, "resolved": 4, "closed": 7}[plan]
    step = created
    if appeal.status == "assigned":  # the engine already assigned it at intake
        path, stop = path[1:], max(stop - 1, 0)
        field = crew.get(f"user:{appeal.assignee_id}", field)
        actors["field"] = field
    for action, who in path[:stop]:
        step = min(step + timedelta(minutes=rng.randint(10, 600)), now)
        if action == "assign":
            appeal.assignee_id = field.staff_id
        data = {"answer": "Выполнено / Орындалды"} if action == "answer" else None
        transition(appeal, action, actors[who], step, data=data)
        if action == "answer":
            appeal.answer_text = "Выполнено / Орындалды"


# --- the demo year: a realistic 12 months in bulk -----------------------------------------------------------
#
# ``seed_year`` writes appeals, their events, citizens and feedback with bulk INSERTs (tens of thousands a
# minute on SQLite) instead of going through intake one by one. Every appeal's history is produced by
# stepping the real state machine table (lifecycle.TRANSITIONS), so it is valid by construction, and is
# cut at ``now``: whatever was still in progress then is open, which gives the seed's ~1% backlog
# (about 400 of 42,000) from arrival rate x time to resolve rather than from a quota.

YEAR_THRESHOLD = 1000  # --appeals at or above this seed a year (below: the recent few weeks, as before)
# Local hour of day (0-23): the line is open 24/7, busiest in office hours.
HOUR_WEIGHTS = [1, 0.6, 0.4, 0.3, 0.3, 0.6, 1.5, 3, 6, 10, 10, 10, 9, 8, 9, 9, 9, 8, 7, 5, 5, 3, 3, 2]
WEEKDAY_WEIGHTS = [1.15, 1.1, 1.05, 1.0, 0.95, 0.7, 0.55]  # Monday .. Sunday
# Month factors (January .. December): heating and gas in winter, water and waste in summer, ...
SEASONS = {
    "heating": [2.2, 2.0, 1.4, 0.6, 0.2, 0.1, 0.1, 0.1, 0.4, 1.4, 2.0, 2.3],
    "gas": [1.5, 1.4, 1.1, 0.8, 0.7, 0.6, 0.6, 0.6, 0.8, 1.1, 1.4, 1.6],
    "street_lighting": [1.3, 1.2, 1.0, 0.8, 0.7, 0.7, 0.7, 0.8, 0.9, 1.1, 1.3, 1.4],
    "water_supply": [0.7, 0.7, 0.8, 0.9, 1.2, 1.6, 1.9, 1.8, 1.2, 0.8, 0.7, 0.7],
    "waste_collection": [0.8, 0.8, 0.9, 1.0, 1.1, 1.3, 1.4, 1.3, 1.1, 0.9, 0.8, 0.8],
    "landscaping": [0.3, 0.3, 0.8, 1.5, 1.7, 1.5, 1.3, 1.2, 1.1, 0.9, 0.5, 0.3],
    "roads": [0.9, 1.0, 1.5, 1.4, 1.1, 0.9, 0.8, 0.8, 0.9, 1.0, 1.0, 0.9],
}
CHANNEL_WEIGHTS = {"phone": 55, "telegram": 18, "whatsapp": 14, "instagram": 5, "facebook": 3, "web": 5}
URGENCY_WEIGHTS = {"emergency": 10, "urgent": 30, "normal": 60}
# Median hours to the answer and the log-normal spread, per type (incidents per urgency).
# Tuned so that what is still in progress at ``now`` is ~1% (the seed: about 400 of 42,000).
RESOLVE_HOURS = {"emergency": (2.5, 0.5), "urgent": (14, 0.55), "normal": (32, 0.6), "complaint": (88, 0.75),
                 "proposal": (140, 0.6), "consultation": (32, 0.6), "gratitude": (24, 0.5)}
RATINGS = {5: 55, 4: 25, 3: 10, 2: 6, 1: 4}
ANSWER = "Выполнено / Орындалды"
ALMATY_OFFSET = timedelta(hours=5)  # Asia/Almaty, no DST since 2005


class _Life:
    """One appeal's history, stepped through the real transition table."""

    def __init__(self, created: datetime):
        self.status = "registered"
        self.events: list[tuple] = [("appeal.registered", None, "registered", "system", created, {})]
        self.at = created
        self.assigned_at = self.answered_at = self.closed_at = None

    def step(self, action: str, actor: Actor, at: datetime, appeal_type: str, data: dict | None = None):
        from server.services.lifecycle import TRANSITIONS

        spec = TRANSITIONS[action]
        # The same checks as lifecycle.transition: a wrong plan here is a bug, not bad luck.
        assert self.status in spec.sources and actor.role in spec.roles, (action, self.status, actor.role)
        assert spec.types is None or appeal_type in spec.types, (action, appeal_type)
        self.events.append((spec.kind, self.status, spec.target, actor, at, data or {}))
        self.status, self.at = spec.target, at
        if spec.target == "assigned":
            self.assigned_at = at
        elif spec.target == "answered":
            self.answered_at = at
        elif spec.target == "closed":
            self.closed_at = at
        elif spec.target == "reopened":
            self.closed_at = None


def _lognormal_hours(rng: random.Random, key: str) -> float:
    median, sigma = RESOLVE_HOURS[key]
    return median * math.exp(rng.gauss(0, sigma))


def _day_weights(topic: str, days: list[date]) -> list[float]:
    season = SEASONS.get(topic)
    return [WEEKDAY_WEIGHTS[d.weekday()] * (season[d.month - 1] if season else 1.0) for d in days]


def seed_year(count: int, *, now: datetime, rng: random.Random,
              progress: Callable[[int, int], None] | None = None, batch: int = 2000) -> int:
    """Add ``count`` appeals spread over the 12 months before ``now``, in bulk, with histories and feedback.

    Distributions follow the seed document: five types, mostly phone calls, topics led by infrastructure and
    housing/communal services, six sectors; almost everything answered, about 1% still open at ``now``.
    """
    from server.services import routing
    from server.services.calendar import add_working_days

    index, sector_ids = routing.sector_index()
    sectors = routing.current_sectors()
    if index is None or not sectors:
        raise RuntimeError("load a sector set first")
    unit_of = {s.code: s.unit_id for s in sectors}
    bounds = [to_shape(s.geom).bounds for s in sectors]
    box = (min(b[0] for b in bounds), min(b[1] for b in bounds), max(b[2] for b in bounds),
           max(b[3] for b in bounds))
    crew = _year_crew()
    topics = [t for t in TOPIC_WEIGHTS if t in {c for c in db.session.scalars(select(Topic.code))}] or ["other"]
    today = (now + ALMATY_OFFSET).date()
    days = [today - timedelta(days=i) for i in range(365, -1, -1)]
    day_cum = {t: list(itertools.accumulate(_day_weights(t, days))) for t in topics}
    # Repeated problems: each topic has a few places that keep coming back (a broken main, a dark street).
    spots = {t: [(rng.uniform(box[0], box[2]), rng.uniform(box[1], box[3])) for _ in range(8)] for t in topics}
    prefix = current_app.config["JAUAP_REG_PREFIX"]
    counters = {y: v for (p, y), v in ((k[:2], k[2]) for k in db.session.execute(
        select(RegCounter.prefix, RegCounter.year, RegCounter.value)).all()) if p == prefix}
    has_sla_state = "sla_state" in Appeal.__table__.c
    done = 0
    while done < count:
        n = min(batch, count - done)
        plans = []
        for _ in range(n):
            topic = rng.choices(topics, weights=[TOPIC_WEIGHTS[t] for t in topics])[0]
            day = rng.choices(days, cum_weights=day_cum[topic])[0]
            hour = rng.choices(range(24), weights=HOUR_WEIGHTS)[0]
            local = datetime.combine(day, datetime.min.time()) + timedelta(hours=hour, seconds=rng.randint(0, 3599))
            created = local.replace(tzinfo=UTC) - ALMATY_OFFSET
            if created >= now:
                created = now - timedelta(minutes=rng.randint(1, 600))
            if rng.random() < 0.35:
                cx, cy = rng.choice(spots[topic])
                lon, lat = rng.gauss(cx, 0.0012), rng.gauss(cy, 0.0009)  # ~100 m around the spot
            else:
                # Anywhere in town: the sectors' box, retried a few times so that only a few
                # (the ones the operator routes by hand) fall outside every sector.
                for _attempt in range(4):
                    lon, lat = rng.uniform(box[0], box[2]), rng.uniform(box[1], box[3])
                    if index.lookup(lon, lat) is not None:
                        break
            plans.append({"topic": topic, "created": created, "lon": lon, "lat": lat})
        plans.sort(key=lambda p: p["created"])  # ids and numbers follow time, as real intake would
        matches = index.lookup_many([p["lon"] for p in plans], [p["lat"] for p in plans])
        citizens, appeals, lives = [], [], []
        for i, plan in enumerate(plans):
            code = matches.codes[i]
            appeal_type = _pick(rng, TYPE_WEIGHTS)
            urgency = _pick(rng, URGENCY_WEIGHTS) if appeal_type == "incident" else None
            channel = _pick(rng, CHANNEL_WEIGHTS)
            lang = rng.choices(["kk", "ru", "en"], weights=[55, 42, 3])[0]
            created = plan["created"]
            year = (created + ALMATY_OFFSET).year
            counters[year] = counters.get(year, 0) + 1
            due = sla.due_at(appeal_type, plan["topic"], urgency, created)
            if code is None:  # outside every sector: the operator routes it by hand
                code = rng.choice(sectors).code
                routed_by, method = "manual", "manual"
            else:
                routed_by, method = "auto", matches.methods[i]
            life, extra = _plan_life(rng, appeal_type, urgency, created, due, now, crew, unit_of[code], routed_by,
                                     add_working_days, partial(sla.due_at, appeal_type, plan["topic"], urgency))
            lives.append((life, extra))
            citizens.append({"channel": channel, "handle": None, "name": f"Demo Citizen Y{done + i + 1}",
                             "phone": f"+7 70{rng.randint(0, 8)} {rng.randint(1000000, 9999999)}",
                             "language": lang, "created_at": created})
            row = {"reg_no": format_reg_no(prefix, year, counters[year]),
                   "tracking_token": secrets.token_urlsafe(24), "type": appeal_type, "topic_code": plan["topic"],
                   "urgency": urgency, "description": rng.choice(DESCRIPTIONS[lang]), "channel": channel,
                   "location": geosql.point(round(plan["lon"], 6), round(plan["lat"], 6)),
                   "accuracy_m": rng.choice([5, 10, 20, 50]), "address": None,
                   "sector_id": sector_ids[code], "unit_id": unit_of[code], "route_method": method,
                   "route_distance_m": 0.0 if routed_by == "auto" and method == "covers" else None,
                   "assignee_id": extra["assignee_id"], "status": life.status,
                   "answer_text": ANSWER if life.answered_at else None,
                   "created_at": created, "updated_at": life.at, "due_at": extra["due"],
                   "assigned_at": life.assigned_at, "answered_at": life.answered_at, "closed_at": life.closed_at,
                   "created_by_id": crew["operator"].staff_id if channel == "phone" else None}
            if has_sla_state:
                row.update(_sla_columns(life, extra["due"], now))
            if "original_due_at" in Appeal.__table__.c:
                row["original_due_at"] = extra["original_due"]
            appeals.append(row)
        citizen_ids = db.session.scalars(
            insert(Citizen).returning(Citizen.id, sort_by_parameter_order=True), citizens).all()
        for row, cid in zip(appeals, citizen_ids, strict=True):
            row["citizen_id"] = cid
        appeal_ids = db.session.scalars(
            insert(Appeal).returning(Appeal.id, sort_by_parameter_order=True), appeals).all()
        events, feedback = [], []
        for appeal_id, (life, extra) in zip(appeal_ids, lives, strict=True):
            for kind, source, target, actor, at, data in life.events:
                actor = SYSTEM if actor == "system" else actor
                events.append({"appeal_id": appeal_id, "kind": kind, "from_status": source, "to_status": target,
                               "actor_kind": actor.kind, "actor_id": actor.staff_id, "created_at": at,
                               "data": data})
            for fb in extra["feedback"]:
                feedback.append({"appeal_id": appeal_id, **fb})
        events.sort(key=lambda e: (e["created_at"], e["appeal_id"]))  # event ids follow time too
        db.session.execute(insert(AppealEvent), events)
        if feedback:
            db.session.execute(insert(Feedback), feedback)
        _store_counters(prefix, counters)
        # The histories bypass lifecycle.transition (and so its per-step audit entries): one audit
        # entry per batch says that these appeals were generated, and which ids they got.
        audit.record("demo.year_seeded", None, now, object_type="appeal",
                     data={"appeals": n, "first_id": appeal_ids[0], "last_id": appeal_ids[-1]})
        db.session.commit()
        done += n
        if progress:
            progress(done, count)
    return count


def _sla_columns(life: _Life, due: datetime | None, now: datetime) -> dict:
    """The SLA state the close (or the tick) would have stored."""
    if due is None:
        return {"sla_state": None, "sla_breached_at": None}
    end = life.answered_at if life.status in ("answered", "closed") else None
    if end is not None:
        late = end > due
        return {"sla_state": "breached" if late else "met", "sla_breached_at": due if late else None}
    if life.status in ("rejected", "duplicate", "forwarded"):
        return {"sla_state": "met" if life.at <= due else "breached", "sla_breached_at": due if life.at > due else None}
    return {"sla_state": "breached" if now >= due else "on_time", "sla_breached_at": due if now >= due else None}


def _store_counters(prefix: str, counters: dict[int, int]) -> None:
    for year, value in counters.items():
        row = db.session.get(RegCounter, (prefix, year))
        if row is None:
            db.session.add(RegCounter(prefix=prefix, year=year, value=value))
        else:
            row.value = max(row.value, value)
    db.session.flush()


def _year_crew() -> dict:
    """The demo staff who take the steps: operator, dispatcher, inspector and each unit's field staff."""
    crew: dict = {"field": {}}
    for s in db.session.scalars(select(Staff).where(Staff.active.is_(True)).order_by(Staff.id)):
        if s.role == "field_staff":
            crew["field"].setdefault(s.unit_id, []).append(Actor.of(s))
        else:
            crew.setdefault(s.role, Actor.of(s))
    for role in ("operator", "dispatcher", "inspector"):
        if role not in crew:
            raise RuntimeError(f"the demo year needs a {role}: run `flask demo seed` (it creates the demo staff)")
    return crew


def _plan_life(rng, appeal_type, urgency, created, due, now, crew, unit_id, routed_by, add_working_days, term):
    """The appeal's whole planned history, stepped through the state machine and cut at ``now``.

    ``term(start)`` is the due time of a term starting at ``start`` (a reopening starts a fresh one).
    """
    life, extra = _plan_steps(rng, appeal_type, urgency, created, due, now, crew, unit_id, routed_by,
                              add_working_days, term)
    extension = extra.pop("extension", None)
    if extension is not None:
        at, data = extension
        # A clock event: the status does not change, so it is the status at that moment on both sides.
        status = [e[2] for e in life.events if e[4] <= at][-1]
        life.events.append(("appeal.extended", status, status, crew["inspector"], at, data))
        life.events.sort(key=lambda e: e[4])
    return life, extra


def _plan_steps(rng, appeal_type, urgency, created, due, now, crew, unit_id, routed_by, add_working_days, term):
    life = _Life(created)
    operator, dispatcher, inspector = crew["operator"], crew["dispatcher"], crew["inspector"]
    team = crew["field"].get(unit_id) or [dispatcher]
    extra = {"assignee_id": None, "due": due, "original_due": None, "feedback": []}
    t = created + timedelta(seconds=rng.randint(1, 5))
    if routed_by == "auto":
        life.step("route", SYSTEM, t, appeal_type)
    else:
        life.step("unroute", SYSTEM, t, appeal_type, {"reason_code": "no_sector"})
        t += timedelta(minutes=rng.randint(5, 240))
        if t >= now:
            return life, extra
        life.step("route_manually", operator, t, appeal_type)
    fate = rng.random()
    if appeal_type != "gratitude" and fate < 0.06:  # rejected, duplicate or forwarded by the desk
        action = "reject" if fate < 0.02 else "mark_duplicate" if fate < 0.045 else "forward"
        t += timedelta(minutes=rng.randint(10, 60 * 48))
        if t < now:
            life.step(action, operator, t, appeal_type, {"reason": "demo"})
        return life, extra
    first_contact = {"consultation": 0.85, "gratitude": 0.95}.get(appeal_type, 0)
    if rng.random() < first_contact:
        t += timedelta(minutes=rng.randint(2, 30))
        if t >= now:
            return life, extra
        life.step("answer_first_contact", operator, t, appeal_type, {"answer": ANSWER})
        t += timedelta(hours=rng.uniform(2, 72))
        if t < now:
            life.step("close", SYSTEM, t, appeal_type)
        return life, extra
    hours = _lognormal_hours(rng, urgency if appeal_type == "incident" else appeal_type)
    # A long complaint or proposal gets its deadline extended (Art. 76) before it would be missed.
    if due is not None and appeal_type in ("complaint", "proposal") and created + timedelta(hours=hours) > due \
            and rng.random() < 0.6:
        at = created + (due - created) * 0.7
        new_due = add_working_days(due, 15)
        if at < now:
            # Shaped as services.clock.extend records it; placed in the history once the steps are known.
            extra["extension"] = (at, {"reason": "demo: needs a contractor", "working_days": 15,
                                       "previous_due_at": due.isoformat(), "due_at": new_due.isoformat()})
            extra["due"], extra["original_due"] = new_due, due
    worker = rng.choice(team)
    extra["assignee_id"] = worker.staff_id
    rounds = 2 if rng.random() < 0.04 else 1  # sometimes the inspector returns the work
    share = [0.03, 0.08, 0.2, 0.35, 0.75, 0.9, 1.0]  # of the time to answer: assign .. answer
    plan = [("assign", dispatcher), ("accept", worker), ("depart", worker), ("arrive", worker),
            ("resolve", worker), ("verify", inspector), ("answer", inspector)]
    for (action, who), part in zip(plan, share, strict=True):
        at = created + timedelta(hours=hours * part)
        if at <= life.at:
            at = life.at + timedelta(seconds=rng.randint(30, 600))
        if at >= now:
            return life, extra
        if action == "verify" and rounds == 2:
            life.step("return_work", inspector, at, appeal_type, {"reason": "demo: photo does not show the fix"})
            for again in ("accept", "arrive", "resolve"):
                at += timedelta(minutes=rng.randint(30, 600))
                if at >= now:
                    return life, extra
                life.step(again, worker, at, appeal_type)
            at += timedelta(minutes=rng.randint(10, 120))
            if at >= now:
                return life, extra
        life.step(action, who, at, appeal_type, {"answer": ANSWER} if action == "answer" else None)
    t = life.at + timedelta(hours=rng.uniform(1, 96))
    if t >= now:
        return life, extra
    by_citizen = rng.random() < 0.3
    life.step("close", CITIZEN if by_citizen else SYSTEM, t, appeal_type)
    roll = rng.random()
    if roll < 0.03:  # a dispute: the citizen says it is not fixed, and the work is done again
        t += timedelta(hours=rng.uniform(2, 96))
        if t >= now:
            return life, extra
        extra["feedback"].append({"verdict": "dispute", "rating": rng.choice([1, 1, 2]),
                                  "comment": "demo: still broken", "created_at": t})
        # As services.sla.reopen_cycle: a fresh term from the reopening; the event keeps the first cycle's.
        first_due = extra["due"]
        first_state = None if first_due is None else "met" if life.answered_at <= first_due else "breached"
        extra["due"], extra["original_due"] = term(t), None
        life.step("reopen", CITIZEN, t, appeal_type, {
            "reason": "demo: still broken", "previous_due_at": first_due.isoformat() if first_due else None,
            "previous_sla_state": first_state, "due_at": extra["due"].isoformat() if extra["due"] else None})
        for action, who in (("assign", dispatcher), ("accept", worker), ("arrive", worker), ("resolve", worker),
                            ("verify", inspector), ("answer", inspector), ("close", SYSTEM)):
            t += timedelta(hours=rng.uniform(0.5, 30))
            if t >= now:
                return life, extra
            life.step(action, who, t, appeal_type, {"answer": ANSWER} if action == "answer" else None)
    elif roll < 0.38:
        at = life.at + timedelta(hours=rng.uniform(0.1, 48))
        if at < now:
            extra["feedback"].append({"verdict": "confirm", "rating": _pick(rng, RATINGS), "comment": None,
                                      "created_at": at})
    return life, extra


def state_machine_problems(appeal_ids: list[int] | None = None) -> list[str]:
    """Appeals whose events do not replay through the state machine to their stored status (empty: all fine)."""
    from server.services.lifecycle import TRANSITIONS

    by_kind: dict[str, list] = {}
    for spec in TRANSITIONS.values():
        by_kind.setdefault(spec.kind, []).append(spec)
    query = select(AppealEvent.appeal_id, AppealEvent.kind, AppealEvent.from_status, AppealEvent.to_status,
                   AppealEvent.actor_kind, Staff.role).outerjoin(Staff, Staff.id == AppealEvent.actor_id) \
        .order_by(AppealEvent.appeal_id, AppealEvent.created_at, AppealEvent.id)
    if appeal_ids is not None:
        query = query.where(AppealEvent.appeal_id.in_(appeal_ids))
    statuses = dict(db.session.execute(select(Appeal.id, Appeal.status)).all())
    current: dict[int, str | None] = {}
    problems = []
    for appeal_id, kind, source, target, actor_kind, role in db.session.execute(query):
        if target is None or (kind not in by_kind and source == target):
            if target is not None and source != current.get(appeal_id):
                problems.append(f"appeal {appeal_id}: {kind} at {source} but the appeal was {current.get(appeal_id)}")
            continue  # a clock event or a note: no status change
        state = current.get(appeal_id)
        if kind == "appeal.registered":
            ok = state is None and target == "registered"
        else:
            role = role if actor_kind == "staff" else actor_kind
            ok = source == state and any(source in s.sources and s.target == target and role in s.roles
                                         for s in by_kind.get(kind, []))
        if not ok:
            problems.append(f"appeal {appeal_id}: {kind} {source}->{target} by {role} after {state}")
        current[appeal_id] = target
    for appeal_id, state in current.items():
        if statuses.get(appeal_id) != state:
            problems.append(f"appeal {appeal_id}: stored {statuses.get(appeal_id)}, history ends at {state}")
    return problems
