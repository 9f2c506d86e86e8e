"""Static checks of the staff screens (no browser): catalogs complete in kk/ru/en, every key used exists,
no inline script or inline event handler (a CSP without 'unsafe-inline' is coming), vendored files present."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import pytest

from server.config import REPO_ROOT

PWA = REPO_ROOT / "pwa"
SCREENS = [PWA / name for name in ("dispatch", "operator", "field", "citizen", "inspector", "templates", "analytics")]
CATALOGS = {lang: json.loads((PWA / "shared" / "i18n" / f"{lang}.json").read_text(encoding="utf-8"))
            for lang in ("kk", "ru", "en")}
# Keys built at run time from these prefixes and a vocabulary value.
DYNAMIC = {
    "type": ["consultation", "incident", "proposal", "complaint", "gratitude"],
    "urgency": ["emergency", "urgent", "normal"],
    "channel": ["phone", "web", "telegram", "whatsapp", "instagram", "facebook", "open311"],
    "status": ["registered", "routed", "unrouted", "assigned", "accepted", "en_route", "on_site", "resolved",
               "verified", "answered", "closed", "reopened", "rejected", "duplicate", "forwarded"],
    "sla": ["on_time", "at_risk", "breached", "none"],
    "conn": ["connecting", "syncing", "online", "offline"],
    "role": ["admin", "operator", "dispatcher", "inspector", "qc_analyst", "analyst", "methodologist", "pr_manager",
             "unit_head", "field_staff"],
    "event": ["registered", "routed", "unrouted", "assigned", "reassigned", "moved", "declined", "accepted",
              "en_route", "on_site", "resolved", "cannot_resolve", "verified", "returned", "answered", "closed",
              "reopened", "rejected", "duplicate", "forwarded", "escalated"],
}


def sources(*suffixes):
    roots = [*SCREENS, PWA / "shared" / "js"]
    return [p for root in roots for p in sorted(root.rglob("*")) if p.suffix in suffixes]


def used_keys() -> set[str]:
    keys: set[str] = set()
    for path in sources(".html"):
        text = path.read_text(encoding="utf-8")
        keys |= set(re.findall(r'data-i18n="([^"]+)"', text))
        for attr in re.findall(r'data-i18n-attr="([^"]+)"', text):
            keys |= {pair.split(":", 1)[1].strip() for pair in attr.split(";")}
    for path in sources(".js"):
        text = path.read_text(encoding="utf-8")
        keys |= set(re.findall(r'\bt\(\s*"([a-z_]+\.[a-z_.]+)"', text))
        keys |= set(re.findall(r'"((?:detail|result|form|reassign)\.[a-z_]+)"', text))
    for prefix, values in DYNAMIC.items():
        keys |= {f"{prefix}.{v}" for v in values}
    return keys


def test_the_three_catalogs_have_the_same_keys_and_no_empty_strings():
    en = set(CATALOGS["en"])
    for lang, catalog in CATALOGS.items():
        assert set(catalog) == en, f"{lang}: missing {en - set(catalog)}, extra {set(catalog) - en}"
        assert all(isinstance(v, str) and v.strip() for v in catalog.values()), lang
    # Kazakh is really Kazakh: its letters appear, and most strings differ from Russian.
    kk_text = "".join(CATALOGS["kk"].values())
    assert set("әғқңөұүһі") & set(kk_text.lower())
    assert sum(CATALOGS["kk"][k] != CATALOGS["ru"][k] for k in en) > 0.8 * len(en)


def test_every_key_the_screens_use_is_in_the_catalogs():
    missing = sorted(k for k in used_keys() if k not in CATALOGS["en"])
    assert missing == []


def test_placeholders_match_across_languages():
    for key, text in CATALOGS["en"].items():
        want = set(re.findall(r"\{(\w+)\}", text))
        for lang in ("kk", "ru"):
            assert set(re.findall(r"\{(\w+)\}", CATALOGS[lang][key])) == want, (lang, key)


class _Inline(HTMLParser):
    def __init__(self):
        super().__init__()
        self.problems: list[str] = []

    def handle_starttag(self, tag, attrs):
        names = dict(attrs)
        if tag == "script" and "src" not in names:
            self.problems.append("inline <script>")
        if tag == "script" and names.get("src", "").startswith(("http:", "https:", "//")):
            self.problems.append(f"remote script {names['src']}")
        if tag == "link" and names.get("href", "").startswith(("http:", "https:", "//")):
            self.problems.append(f"remote link {names['href']}")
        self.problems += [f"inline handler {k} on <{tag}>" for k in names if k.startswith("on")]
        if "style" in names:
            self.problems.append(f"inline style on <{tag}>")


@pytest.mark.parametrize("page", ["dispatch/index.html", "operator/index.html"])
def test_pages_have_no_inline_script_handlers_styles_or_cdn(page):
    parser = _Inline()
    parser.feed((PWA / page).read_text(encoding="utf-8"))
    assert parser.problems == []


def test_scripts_do_not_inject_html_from_data():
    # Text goes in with textContent; innerHTML is reserved for fixed markup built from numbers.
    for path in sources(".js"):
        for line in path.read_text(encoding="utf-8").splitlines():
            assert "innerHTML" not in line and "insertAdjacentHTML" not in line, f"{path.name}: {line.strip()}"


def test_vendored_libraries_are_present_with_licences():
    for rel in ["leaflet/leaflet.js", "leaflet/leaflet.css", "leaflet/LICENSE", "leaflet/images/marker-icon.png",
                "leaflet.markercluster/leaflet.markercluster.js", "leaflet.markercluster/MarkerCluster.css",
                "leaflet.markercluster/MIT-LICENCE.txt", "socket.io/socket.io.min.js", "socket.io/LICENSE"]:
        assert (PWA / "vendor" / rel).is_file(), rel
    deps = json.loads((PWA / "package.json").read_text())["dependencies"]
    assert all(re.fullmatch(r"\d+\.\d+\.\d+", v) for v in deps.values()), deps
    assert deps["socket.io-client"].startswith("4."), "protocol v5 (python-socketio 5) needs socket.io-client 4.x"
    readme = (PWA / "vendor" / "README.md").read_text()
    for name in ("leaflet", "leaflet.markercluster", "socket.io-client"):
        assert f"| {name} | {deps[name]} |" in readme
