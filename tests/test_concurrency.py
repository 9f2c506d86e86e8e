"""Real commits from many threads: idempotency and registration numbers under concurrency."""

from __future__ import annotations

import re
import threading
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import func, select

from server.extensions import db
from server.models import Appeal, AppealEvent
from server.models.types import utcnow
from tests.conftest import APPEAL, bearer, make_staff


def _operator_headers(app):
    with app.app_context():
        staff = make_staff("operator")
        headers = bearer(staff)
        db.session.commit()
    return headers


def _fire(app, headers, bodies_and_keys, workers):
    barrier = threading.Barrier(workers)

    def one(args):
        body, key = args
        client = app.test_client()
        barrier.wait()
        res = client.post("/api/v1/appeals", json=body, headers={**headers, "Idempotency-Key": key} if key
                          else headers)
        return res.status_code, res.get_json()

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(one, bodies_and_keys))


def test_same_key_from_20_threads_makes_exactly_one_appeal(committed_app):
    headers = _operator_headers(committed_app)
    results = _fire(committed_app, headers, [(APPEAL, "call-20-threads")] * 20, 20)
    statuses = sorted(s for s, _ in results)
    assert statuses.count(201) == 1 and statuses.count(200) == 19, results
    assert len({body["id"] for _s, body in results}) == 1
    assert len({body["reg_no"] for _s, body in results}) == 1
    with committed_app.app_context():
        assert db.session.scalar(select(func.count(Appeal.id))) == 1
        assert db.session.scalar(select(func.count(AppealEvent.id))) == 2


def test_registration_numbers_stay_unique_and_gap_free_under_concurrency(committed_app):
    headers = _operator_headers(committed_app)
    jobs = [({**APPEAL, "description": f"parallel {i}"}, f"k-{i}") for i in range(60)]
    results = _fire(committed_app, headers, jobs, 20)
    assert all(s == 201 for s, _ in results), [r for r in results if r[0] != 201][:3]
    numbers = [body["reg_no"] for _s, body in results]
    assert len(set(numbers)) == 60
    year = utcnow().year
    seq = sorted(int(n.rsplit("-", 1)[1]) for n in numbers)
    assert seq == list(range(1, 61))  # no duplicates, no gaps
    assert all(re.fullmatch(rf"TRK-{year}-\d{{6}}", n) for n in numbers)
