"""Jauap's Flask application factory."""

from __future__ import annotations

import logging
from pathlib import Path

from flask import Flask
from flask_babel import get_locale

from server.config import Config

PWA_DIR = Path(__file__).resolve().parent.parent / "pwa"


def create_app(config: Config | None = None) -> Flask:
    """Build the app: settings, extensions, security, API, pages, CLI - in that order."""
    config = config or Config.from_env()
    config.check_production()
    Path(config.instance_path).mkdir(parents=True, exist_ok=True)

    app = Flask(
        __name__,
        instance_path=str(Path(config.instance_path).resolve()),
        static_folder=str(PWA_DIR / "shared"),
        static_url_path="/static",
    )
    app.config.from_mapping(config.to_flask())
    app.extensions["jauap_config"] = config
    app.json.ensure_ascii = False  # Kazakh and Russian text stays readable in API answers
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("server").setLevel(logging.WARNING if config.testing else logging.INFO)

    from server import api, channels, citizen, methodology, models, web  # noqa: F401 - models register on the metadata
    from server.api.errors import register_error_handlers
    from server.channels import open311 as open311_channel
    from server.cli import register_cli
    from server.database import configure_engine, end_sessions_safely
    from server.extensions import db, migrate
    from server.hardening import init_hardening
    from server.i18n import init_i18n
    from server.realtime import init_realtime
    from server.security import init_security

    db.init_app(app)
    end_sessions_safely(app, db)
    with app.app_context():
        configure_engine(db.engine, config.spatialite_library)
    migrate.init_app(app, db, directory=str(Path(__file__).resolve().parent.parent / "migrations"))
    init_i18n(app)
    init_hardening(app)  # before the policy: its cross-origin check answers before the CSRF check
    init_security(app)
    register_error_handlers(app)
    init_realtime(app)
    app.register_blueprint(api.bp)
    app.register_blueprint(web.bp)
    app.register_blueprint(citizen.bp)
    app.register_blueprint(channels.bp)
    app.register_blueprint(methodology.bp)
    app.register_blueprint(open311_channel.bp)
    register_cli(app)

    @app.context_processor
    def _template_globals():
        return {"current_locale": str(get_locale() or "ru")}

    return app
