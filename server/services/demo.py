"""Demo appeals: plausible, spread over the last weeks, some carried through their lifecycle."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import select

from server.extensions import db
from server.models import Staff, Topic
from server.schemas import AppealIn, CitizenIn
from server.services.intake import register_appeal
from server.services.lifecycle import SYSTEM, Actor, transition

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
