"""Language selection: explicit choice, then the user's setting, then Accept-Language.

Babel's negotiation is used rather than werkzeug's ``best_match``: for
``Accept-Language: kk-KZ,ru`` Babel picks ``kk`` (the language of the first
preference), werkzeug would pick ``ru`` (ARCHITECTURE.md §6).
"""

from __future__ import annotations

from babel import negotiate_locale
from flask import Flask, request
from flask_login import current_user

from server.extensions import babel

LOCALES = ("kk", "ru", "en")


LANG_COOKIE = "jauap_lang"


def choose_locale(query_lang: str | None, user_lang: str | None, accept: list[str], default: str,
                  cookie_lang: str | None = None) -> str:
    """Pure rule: ``?lang=`` wins, then the user's setting, then the remembered switch, then negotiation."""
    for choice in (query_lang, user_lang, cookie_lang):
        if choice in LOCALES:
            return choice  # type: ignore[return-value]
    return negotiate_locale(accept, list(LOCALES), sep="-") or default


def select_locale() -> str:
    """Flask-Babel locale selector for the current request."""
    user_lang = None
    try:
        if current_user and current_user.is_authenticated:
            user_lang = current_user.language
    except RuntimeError:  # outside a request with a login manager
        user_lang = None
    accept = [lang.replace("_", "-") for lang, _q in request.accept_languages] if request else []
    query_lang = request.args.get("lang") if request else None
    cookie_lang = request.cookies.get(LANG_COOKIE) if request else None
    return choose_locale(query_lang, user_lang, accept, "ru", cookie_lang)


def remember_switch(response):
    """after_request: a ``?lang=`` choice from the language switch is remembered for a year."""
    lang = request.args.get("lang")
    if lang in LOCALES and request.cookies.get(LANG_COOKIE) != lang:
        response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, samesite="Lax", httponly=True,
                            secure=request.is_secure)
    return response


def init_i18n(app: Flask) -> None:
    """Bind Flask-Babel with the selector."""
    babel.init_app(app, locale_selector=select_locale)
    app.after_request(remember_switch)
