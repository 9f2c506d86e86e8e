"""Browser fixtures: Debian Chromium driven by Playwright against a real Jauap server on loopback.

Skips with a message when /usr/bin/chromium is missing, except under CI=true, where it fails
(``playwright install`` is never used: no browser download). Every test gets a fresh database
(``committed_app``, both backends) served with Socket.IO by ``tests.realtime_server.LiveServer``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from sqlalchemy import select

from server.extensions import db
from tests.conftest import IN_CI, PASSWORD, make_staff
from tests.realtime_server import LiveServer

CHROMIUM = os.environ.get("JAUAP_CHROMIUM", "/usr/bin/chromium")
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
               "--no-first-run"]
# The server's login page has no icon of its own: Chromium's /favicon.ico probe there is not a page error.
IGNORED_CONSOLE = re.compile(r"/favicon\.ico$")


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for the session."""
    if not Path(CHROMIUM).exists():
        if IN_CI:
            pytest.fail(f"Chromium is required in CI: {CHROMIUM} not found (apt-get install chromium)")
        pytest.skip(f"browser tests skipped: {CHROMIUM} not found (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def live(committed_app):
    """The app served on a loopback port (HTTP + Socket.IO)."""
    with LiveServer(committed_app) as server:
        yield server


@pytest.fixture
def api(committed_app):
    """A test client on the same database; ``api.token(username)`` -> bearer headers."""
    client = committed_app.test_client()

    def token(username: str) -> dict:
        res = client.post("/api/v1/auth/token", json={"username": username, "password": PASSWORD})
        assert res.status_code == 200, res.json
        return {"Authorization": f"Bearer {res.json['token']}"}

    client.token = token
    return client


@pytest.fixture
def crew(committed_app):
    """An operator, a dispatcher and one field worker per unit; returns {sector code: unit code}."""
    from server.models import Sector

    with committed_app.app_context():
        make_staff("operator", username="op")
        make_staff("dispatcher", username="disp")
        for n in range(1, 7):
            make_staff("field_staff", unit=f"U{n}", username=f"f{n}")
        db.session.commit()
        units = {s.code: s.unit.code for s in db.session.scalars(select(Sector))}
        db.session.remove()
    return units


class Console:
    """Collects a page's console errors and uncaught exceptions."""

    def __init__(self, page):
        self.errors: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.errors.append(f"uncaught: {exc} {getattr(exc, 'stack', '')}"))

    def _console(self, msg):
        if msg.type != "error":
            return
        url = (msg.location or {}).get("url", "")
        if IGNORED_CONSOLE.search(url):
            return
        self.errors.append(f"{msg.text} ({url})")

    def unexpected(self, *allowed: str) -> list[str]:
        """The errors matching none of the ``allowed`` patterns (e.g. a 4xx the test caused on purpose)."""
        return [e for e in self.errors if not any(re.search(p, e) for p in allowed)]


@pytest.fixture
def open_page(browser, live):
    """``open_page(username, path, viewport=...)`` -> (page, console): a new context, logged in via /login."""
    contexts = []

    def opener(username: str, path: str, viewport=(1280, 800)):
        context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]}, locale="en-US")
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = context.new_page()
        console = Console(page)
        page.goto(f"{live.url}/login?next={path}")
        page.fill("#username", username)
        page.fill("#password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{live.url}{path}")
        return page, console

    yield opener
    for context in contexts:
        context.close()
