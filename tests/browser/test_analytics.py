"""The analytics dashboard in a real browser: it renders with demo-year data, and a filter changes the numbers."""

from __future__ import annotations

import random

import pytest

from server.cli import demo_staff
from server.extensions import db
from server.models.types import utcnow
from tests.conftest import make_staff

pytestmark = pytest.mark.browser


@pytest.fixture
def demo_year(committed_app):
    """600 appeals of a demo year and an analyst."""
    from server.services.demo import seed_year

    with committed_app.app_context():
        demo_staff(utcnow())
        db.session.commit()
        seed_year(600, now=utcnow(), rng=random.Random(3))
        make_staff("analyst", username="ana")
        db.session.remove()


def kpi(page, name: str) -> str:
    return page.text_content(f"[data-kpi={name}] b")


def test_dashboard_renders_and_a_filter_changes_the_numbers(live, demo_year, open_page):
    page, console = open_page("ana", "/analytics/")
    page.wait_for_selector("body[data-loaded]")
    assert kpi(page, "total") == "600"
    assert page.locator("[data-js=bars-type] .an-bar").count() == 5
    assert page.locator("[data-js=bars-channel] .an-bar").count() >= 5
    assert int(page.get_attribute("[data-js=trend]", "data-points")) >= 12
    assert page.locator("[data-js=trend] svg rect.bar").count() >= 12
    assert page.locator("[data-js=tl-sector] tr[data-key]").count() == 6
    assert int(page.get_attribute("[data-js=map]", "data-cells")) > 0
    assert page.locator(".an-export a[href*='format=xlsx']").count() >= 10
    loaded = page.get_attribute("body", "data-loaded")
    page.select_option("[data-js=f-type]", "complaint")
    page.wait_for_function("prev => document.body.dataset.loaded !== prev", arg=loaded)
    filtered = int(kpi(page, "total").replace("\u00a0", "").replace(" ", "").replace(",", ""))
    assert 0 < filtered < 600
    assert page.locator("[data-js=bars-type] .an-bar").count() == 1
    assert "type=complaint" in page.get_attribute(".an-export[data-view=topic] a", "href")
    # On a phone: one column, nothing wider than the screen.
    page.set_viewport_size({"width": 390, "height": 800})
    wide = page.evaluate("""() => [...document.querySelectorAll('body *')]
        .filter((e) => e.getBoundingClientRect().right > window.innerWidth + 1)
        .map((e) => e.tagName + '.' + e.className + '[' + (e.dataset.js || '') + '] ' + e.getBoundingClientRect().right)
        .slice(0, 8)""")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), wide
    assert console.unexpected() == []

