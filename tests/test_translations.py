"""The message catalogues: complete for kk and ru, placeholders intact, and in step with the source.

No Flask app is needed: the .pot and .po files are read with Babel directly.
See server/translations/README.md for the workflow these tests enforce.
"""

from __future__ import annotations

import gettext
import io
import re
from collections import Counter
from pathlib import Path

import pytest
from babel.messages.frontend import CommandLineInterface
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

REPO_ROOT = Path(__file__).resolve().parent.parent
TRANSLATIONS = REPO_ROOT / "server" / "translations"
POT = TRANSLATIONS / "messages.pot"
BABEL_CFG = TRANSLATIONS / "babel.cfg"
KEYWORDS = ["_l", "lazy_gettext", "gettext", "ngettext"]
TRANSLATED = ["kk", "ru"]  # must be complete
LOCALES = [*TRANSLATED, "en"]  # en is the source language: empty msgstr falls back to the msgid

FIX = (
    "Update the catalogues from the repository root:\n"
    "  .venv/bin/pybabel extract -F server/translations/babel.cfg -k _l -k lazy_gettext -k gettext "
    "-k ngettext -o server/translations/messages.pot --no-location --sort-output .\n"
    "  .venv/bin/pybabel update -i server/translations/messages.pot -d server/translations\n"
    "then translate the new or fuzzy entries in server/translations/{kk,ru}/LC_MESSAGES/messages.po "
    "and run: .venv/bin/pybabel compile -d server/translations"
)

# A printf-style conversion, named or not; "%%" is a literal percent sign and is skipped below.
PLACEHOLDER = re.compile(r"%(?:\([^)]*\))?[#0 +\-]*(?:\*|\d+)?(?:\.(?:\*|\d+))?[hlL]?[diouxXeEfFgGcrsa%]")


def _read(path: Path, locale: str | None = None):
    with path.open("rb") as f:
        return read_po(f, locale=locale)


def _ids(catalog) -> set:
    return {m.id for m in catalog if m.id}


def _placeholders(text: str) -> Counter:
    return Counter(p for p in PLACEHOLDER.findall(text) if p != "%%")


def _as_tuple(value) -> tuple:
    return value if isinstance(value, tuple) else (value,)


@pytest.fixture(scope="module")
def template():
    assert POT.is_file(), f"{POT} is missing.\n{FIX}"
    return _read(POT)


@pytest.fixture(scope="module")
def catalogs():
    out = {}
    for lang in LOCALES:
        path = TRANSLATIONS / lang / "LC_MESSAGES" / "messages.po"
        assert path.is_file(), (
            f"{path} is missing; create it with: .venv/bin/pybabel init "
            f"-i server/translations/messages.pot -d server/translations -l {lang}"
        )
        out[lang] = _read(path, lang)
    return out


def test_pot_is_up_to_date_with_the_source(template, tmp_path):
    fresh_path = tmp_path / "messages.pot"
    args = ["pybabel", "-q", "extract", "-F", str(BABEL_CFG)]
    for keyword in KEYWORDS:
        args += ["-k", keyword]
    args += ["-o", str(fresh_path), "--no-location", "--sort-output", str(REPO_ROOT)]
    CommandLineInterface().run(args)
    fresh = _ids(_read(fresh_path))
    committed = _ids(template)
    assert fresh, "extraction found no messages: is server/translations/babel.cfg right?"
    added, removed = sorted(fresh - committed, key=str), sorted(committed - fresh, key=str)
    assert not added and not removed, (
        "server/translations/messages.pot is out of date with the source.\n"
        f"Marked in the source but missing from the .pot: {added}\n"
        f"In the .pot but no longer in the source: {removed}\n{FIX}"
    )


@pytest.mark.parametrize("lang", LOCALES)
def test_catalog_follows_the_template(template, catalogs, lang):
    catalog = catalogs[lang]
    expected, present = _ids(template), _ids(catalog)
    missing = sorted(expected - present, key=str)
    stale = sorted(present - expected, key=str)
    assert not missing and not stale, (
        f"{lang}/LC_MESSAGES/messages.po does not match messages.pot.\n"
        f"Missing: {missing}\nNo longer in the template (pybabel update marks them obsolete): {stale}\n{FIX}"
    )


@pytest.mark.parametrize("lang", LOCALES)
def test_header_is_not_fuzzy(catalogs, lang):
    # pybabel compile silently skips a catalogue whose header is fuzzy.
    assert not catalogs[lang].fuzzy, f"remove the '#, fuzzy' flag from the header of {lang}/messages.po"


@pytest.mark.parametrize("lang", TRANSLATED)
def test_every_message_is_translated(template, catalogs, lang):
    catalog = catalogs[lang]
    untranslated, fuzzy = [], []
    for msgid in sorted(_ids(template), key=str):
        message = catalog.get(msgid)
        if message is None or not all(s.strip() for s in _as_tuple(message.string)):
            untranslated.append(msgid)
        elif message.fuzzy:
            fuzzy.append(msgid)
    assert not untranslated and not fuzzy, (
        f"{lang}/LC_MESSAGES/messages.po is incomplete.\nUntranslated: {untranslated}\n"
        f"Fuzzy (check the translation, then delete the '#, fuzzy' line): {fuzzy}\n{FIX}"
    )


@pytest.mark.parametrize("lang", LOCALES)
def test_placeholders_match(catalogs, lang):
    wrong = []
    for message in catalogs[lang]:
        if not message.id:
            continue
        ids = _as_tuple(message.id)
        expected = _placeholders(ids[-1])
        for string in _as_tuple(message.string):
            if string and _placeholders(string) != expected:
                wrong.append(f"{ids[0]!r}: {string!r}")
    assert not wrong, (
        f"{lang}: these translations change the %(name)s placeholders (keep them exactly as in the msgid):\n"
        + "\n".join(wrong)
    )


@pytest.mark.parametrize("lang", LOCALES)
def test_catalog_compiles_and_translates(template, catalogs, lang):
    buffer = io.BytesIO()
    write_mo(buffer, catalogs[lang])
    buffer.seek(0)
    translations = gettext.GNUTranslations(buffer)
    for msgid in _ids(template):
        if isinstance(msgid, tuple):
            continue
        got = translations.gettext(msgid)
        if lang in TRANSLATED:
            assert got == catalogs[lang].get(msgid).string
        else:
            assert got == msgid


def test_known_translations():
    # A few fixed terms of the contact centre, so a wholesale mistake (swapped files) is caught.
    kk = _read(TRANSLATIONS / "kk" / "LC_MESSAGES" / "messages.po", "kk")
    ru = _read(TRANSLATIONS / "ru" / "LC_MESSAGES" / "messages.po", "ru")
    assert kk.get("Staff login").string == "Қызметкерлердің кіруі"
    assert ru.get("Staff login").string == "Вход для сотрудников"
    assert "өтініш" in kk.get("No such appeal.").string.lower()
    assert "обращение" in ru.get("No such appeal.").string.lower()
