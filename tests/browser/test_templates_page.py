"""The methodologist's reply-template editor in a real browser: the editors render, a text is saved
through the page, and an unknown placeholder is refused under the text it belongs to."""

from __future__ import annotations

import pytest

from server.extensions import db
from tests.conftest import make_staff

pytestmark = pytest.mark.browser


@pytest.fixture
def methodologist(committed_app):
    with committed_app.app_context():
        make_staff("methodologist", username="meth")
        db.session.commit()
        db.session.remove()
    return "meth"


def test_methodologist_saves_a_template_and_sees_a_bad_placeholder_refused(live, api, open_page, methodologist):
    page, console = open_page(methodologist, "/templates/", viewport=(390, 844))
    editor = page.locator("form.tpl-editor[lang=ru]")
    editor.locator("textarea").wait_for()
    assert editor.locator("label").inner_text().strip()  # the language name, set as text
    assert page.locator("form.tpl-editor").count() == 3  # kk, ru, en

    editor.locator("textarea").fill("Обращение {reg_no} зарегистрировано. {nope}")
    editor.locator("[data-js=save]").click()
    page.wait_for_function("() => document.querySelector('form.tpl-editor[lang=ru] [data-js=error]').textContent")
    assert "nope" in editor.locator("[data-js=error]").inner_text()

    editor.locator("textarea").fill("Обращение {reg_no} зарегистрировано.")
    editor.locator("[data-js=save]").click()
    page.wait_for_function("() => document.querySelector('form.tpl-editor[lang=ru] [data-js=done]').textContent")
    saved = api.get("/api/v1/reply-templates", headers=api.token(methodologist)).get_json()
    bodies = [t["body"] for t in saved["templates"] if t["language"] == "ru" and t.get("custom")]
    assert "Обращение {reg_no} зарегистрировано." in bodies
    assert console.unexpected(r"422") == []
