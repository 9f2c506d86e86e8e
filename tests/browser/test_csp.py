"""Every screen loads under the Content-Security-Policy (no inline script, no inline style) without a violation.

A violation is caught two ways: the ``securitypolicyviolation`` DOM event (recorded by an init script) and
Chromium's console message naming the "Content Security Policy". Uncaught page errors fail too.
"""

from __future__ import annotations

import pytest

from server.extensions import db
from tests.conftest import make_staff

pytestmark = pytest.mark.browser

RECORD = """
window.__csp = [];
document.addEventListener("securitypolicyviolation",
  (e) => window.__csp.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`));
"""

STAFF_SCREENS = [("disp", "/dispatch/"), ("op", "/operator/"), ("fw", "/field/"), ("meth", "/templates/"),
                 ("insp", "/inspector/"), ("anl", "/analytics/"), ("op", "/")]
PUBLIC_SCREENS = ["/", "/login", "/report", "/api/v1/docs"]


@pytest.fixture
def staff(committed_app):
    """One staff member per screen's role."""
    with committed_app.app_context():
        for role, name, unit in [("dispatcher", "disp", None), ("operator", "op", None), ("field_staff", "fw", "U1"),
                                 ("methodologist", "meth", None), ("inspector", "insp", None),
                                 ("analyst", "anl", None)]:
            make_staff(role, unit=unit, username=name)
        db.session.commit()
        db.session.remove()


def _watch(page) -> list[str]:
    found: list[str] = []
    page.on("console", lambda msg: found.append(msg.text) if "Content Security Policy" in msg.text else None)
    page.add_init_script(RECORD)
    return found


def _settle(page) -> list[str]:
    page.wait_for_load_state("load")
    page.wait_for_timeout(1200)  # scripts run, the API answers, the map draws
    return page.evaluate("window.__csp")


@pytest.mark.parametrize(("username", "path"), STAFF_SCREENS)
def test_staff_screen_has_no_csp_violation(live, staff, open_page, username, path):
    page, console = open_page(username, path)
    messages = _watch(page)
    page.reload()  # the screen again, now with the recorder in place from the first byte
    events = _settle(page)
    assert events == [] and messages == [], (events, messages)
    assert console.unexpected() == []


@pytest.mark.parametrize("path", PUBLIC_SCREENS)
def test_public_screen_has_no_csp_violation(browser, live, path):
    context = browser.new_context(locale="en-US")
    try:
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        messages = _watch(page)
        res = page.goto(f"{live.url}{path}")
        assert res.status == 200
        assert "script-src 'self';" in res.headers["content-security-policy"]
        events = _settle(page)
        assert events == [] and messages == [] and errors == [], (events, messages, errors)
        if path == "/api/v1/docs":
            # Swagger UI (vendored, its start script in a file) still renders the operations.
            page.wait_for_selector(".opblock", timeout=10_000)
    finally:
        context.close()


def test_an_inline_script_is_blocked(browser, live):
    """The policy really bites: a script injected into a page's HTML does not run."""
    context = browser.new_context()
    try:
        page = context.new_page()
        messages = _watch(page)
        page.goto(f"{live.url}/login")
        page.evaluate("""() => {
            const frag = document.createRange().createContextualFragment('<script>window.__pwned = 1<\\/script>');
            document.body.appendChild(frag);
        }""")
        page.wait_for_timeout(200)
        assert page.evaluate("window.__pwned") is None
        assert len(page.evaluate("window.__csp")) >= 1 or messages
    finally:
        context.close()
