"""Settings, production refusal, the OpenAPI document and its offline docs page, locale choice."""

from __future__ import annotations

import pytest
from openapi_spec_validator import validate

from server.config import DEFAULT_SECRET, Config, UnsafeConfigError
from server.i18n import choose_locale


def test_default_database_is_spatialite_file_in_instance(tmp_path):
    cfg = Config(instance_path=str(tmp_path))
    assert cfg.resolved_database_url == f"sqlite:///{tmp_path / 'jauap.sqlite'}"
    assert Config(database_url="postgres://u@h/db").resolved_database_url == "postgresql+psycopg://u@h/db"


def test_settings_come_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("JAUAP_SECRET_KEY", "s" * 40)
    monkeypatch.setenv("JAUAP_INSTANCE_PATH", str(tmp_path))
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1/x")
    monkeypatch.setenv("JAUAP_REDIS_URL", "redis://127.0.0.1:6379/0")
    monkeypatch.setenv("JAUAP_SECTOR_TOLERANCE_M", "75")
    cfg = Config.from_env()
    assert (cfg.secret_key, cfg.instance_path, cfg.redis_url, cfg.sector_tolerance_m) == (
        "s" * 40, str(tmp_path), "redis://127.0.0.1:6379/0", 75.0)


@pytest.mark.parametrize(("changes", "needle"), [
    ({"secret_key": DEFAULT_SECRET}, "JAUAP_SECRET_KEY"),
    ({"secret_key": "short"}, "JAUAP_SECRET_KEY"),
    ({"debug": True}, "JAUAP_DEBUG"),
    ({"session_cookie_secure": False}, "JAUAP_SECURE_COOKIES"),
    ({"cors_origins": ["*"]}, "JAUAP_CORS_ORIGINS"),
])
def test_production_refuses_unsafe_settings(changes, needle):
    safe = {"env": "production", "secret_key": "x" * 48, "session_cookie_secure": True}
    Config(**safe).check_production()  # safe settings start
    with pytest.raises(UnsafeConfigError, match=needle):
        Config(**{**safe, **changes}).check_production()


def test_create_app_refuses_unsafe_production(tmp_path):
    from server import create_app

    with pytest.raises(UnsafeConfigError):
        create_app(Config(env="production", instance_path=str(tmp_path)))


@pytest.mark.parametrize(("query", "user", "accept", "expected"), [
    (None, None, ["kk-KZ", "ru"], "kk"),
    (None, None, ["ru-RU", "en"], "ru"),
    (None, None, ["de", "fr"], "ru"),
    (None, "en", ["kk"], "en"),
    ("kk", "en", ["ru"], "kk"),
    ("xx", None, ["en-GB"], "en"),
])
def test_locale_choice(query, user, accept, expected):
    assert choose_locale(query, user, accept, "ru") == expected


@pytest.mark.usefixtures("db_session")
def test_language_switch_is_remembered(client):
    assert "Кіру" in client.get("/login?lang=kk").get_data(as_text=True)
    page = client.get("/login", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "Кіру" in page  # the cookie set by the switch beats the browser's Accept-Language
    assert "Вход" in client.get("/login?lang=ru").get_data(as_text=True)


@pytest.mark.usefixtures("db_session")
def test_openapi_document_is_valid_and_covers_the_api(client):
    doc = client.get("/api/v1/openapi.json").json
    validate(doc)
    assert {"/api/v1/appeals", "/api/v1/appeals/{appeal_id}", "/api/v1/sectors", "/api/v1/sectors/lookup",
            "/api/v1/topics", "/api/v1/auth/token"} <= set(doc["paths"])
    create = doc["paths"]["/api/v1/appeals"]["post"]
    schema = doc["components"]["schemas"][create["requestBody"]["content"]["application/json"]["schema"]["$ref"]
                                          .rsplit("/", 1)[1]]
    assert schema["properties"]["description"]["maxLength"] == 4000
    assert "Idempotency-Key" in [p["name"] for p in create["parameters"]]


@pytest.mark.usefixtures("db_session")
def test_docs_page_works_offline(client):
    page = client.get("/api/v1/docs")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "http://" not in html.replace("http://localhost", "") and "https://" not in html
    for asset in ("/vendor/swagger-ui/swagger-ui-bundle.js", "/vendor/swagger-ui/swagger-ui.css", "/static/docs.js"):
        assert asset in html
        assert client.get(asset).status_code == 200, asset
