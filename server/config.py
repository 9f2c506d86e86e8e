"""Every setting Jauap reads, from the environment, typed here and nowhere else.

Names are ``JAUAP_*`` except ``DATABASE_URL`` (the name every platform uses).
``Config.from_env()`` builds the settings for the process; ``TestConfig`` is
what the test-suite starts from. Production (``JAUAP_ENV=production``) refuses
to start on unsafe settings rather than run insecurely.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from notifications.provider import DEFAULT_MEDIA_HOSTS
from notifications.webpush import DEFAULT_PUSH_HOSTS

DEFAULT_SECRET = "dev-insecure-change-me"  # noqa: S105 - a marker that production refuses, not a secret
REPO_ROOT = Path(__file__).resolve().parent.parent


class UnsafeConfigError(RuntimeError):
    """Raised when production settings would run the service insecurely."""


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def _env_bool(name: str, default: bool) -> bool:
    value = _env(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _env_int(name: str, default: int) -> int:
    value = _env(name)
    return default if value is None else int(value)


def _env_float(name: str, default: float) -> float:
    value = _env(name)
    return default if value is None else float(value)


def _env_list(name: str, default: list[str]) -> list[str]:
    value = _env(name)
    if value is None:
        return list(default)
    return [item.strip() for item in value.split(",") if item.strip()]


@dataclass
class Config:
    """Typed settings; ``to_flask()`` turns them into the Flask config mapping."""

    env: str = "development"
    secret_key: str = DEFAULT_SECRET
    debug: bool = False
    instance_path: str = str(REPO_ROOT / "instance")
    database_url: str | None = None
    redis_url: str | None = None
    redis_channel: str = "jauap"
    spatialite_library: str = "mod_spatialite"
    sector_file: str = str(REPO_ROOT / "sectors_geojson" / "turkestan.geojson")
    sector_tolerance_m: float = 150.0
    similar_radius_m: float = 50.0
    reg_prefix: str = "TRK"
    timezone: str = "Asia/Almaty"
    default_locale: str = "ru"
    max_content_length: int = 1 * 1024 * 1024
    token_ttl_hours: int = 12
    session_cookie_secure: bool = False
    cors_origins: list[str] = field(default_factory=list)
    async_mode: str = "threading"
    accept_timeout_min: int = 15
    position_min_interval_s: float = 10.0
    position_retention_days: int = 30
    position_stale_min: int = 10
    connection_sweep_s: float = 2.0
    tile_url: str | None = None
    at_risk_share: float = 0.75
    geofence_radius_m: float = 100.0
    geofence_max_accuracy_m: float = 500.0
    # Quality control (server/services/qc.py): the share of closed appeals called back, a daily cap (0: none)
    callback_sample_share: float = 0.1
    callback_per_day: int = 0
    # Web Push and the outbox (notifications/webpush.py; server/services/outbox.py)
    vapid_subject: str = "mailto:jauap@localhost"
    push_hosts: list[str] = field(default_factory=lambda: list(DEFAULT_PUSH_HOSTS))
    push_allow_loopback: bool = False
    sla_warn_hours: float = 24.0
    outbox_interval_s: float = 1.5
    outbox_max_attempts: int = 8
    # The citizen web report (server/citizen.py): limits per client address, proxies in front, feedback window
    report_limits: str = "5/600,50/86400"
    # Staff logins (per client address and per username; failures only) and appeal creation (per account)
    login_limits: str = "10/60,100/3600"
    appeal_limits: str = "120/60"
    # Open311 writes (requests and updates) per API key: a partner's runaway client cannot flood intake
    open311_limits: str = "60/60,5000/86400"
    proxy_hops: int = 0
    # PostgreSQL time limits, so that a database that stops answering, or a row lock held by a stuck
    # transaction, costs a request a 503 after seconds instead of holding a worker forever.
    db_connect_timeout_s: int = 5
    db_statement_timeout_ms: int = 30_000
    db_lock_timeout_ms: int = 10_000
    db_idle_in_transaction_timeout_ms: int = 60_000
    feedback_window_days: int = 15
    # Citizen chat channels (server/channels/) and replies on the channel of origin (server/services/replies.py)
    public_url: str = "http://localhost:5000"
    telegram_bot_token: str | None = None
    telegram_secret: str | None = None
    telegram_api_base: str = "https://api.telegram.org"
    meta_app_secret: str | None = None
    meta_verify_token: str | None = None
    meta_page_token: str | None = None
    whatsapp_token: str | None = None
    whatsapp_phone_id: str | None = None
    # An approved WhatsApp message template (body: {{1}} reg no, {{2}} status, {{3}} tracking link), sent
    # when a reply comes more than 24 hours after the citizen last wrote and WhatsApp refuses free text.
    whatsapp_template: str | None = None
    graph_api_base: str = "https://graph.facebook.com/v21.0"
    media_hosts: list[str] = field(default_factory=lambda: list(DEFAULT_MEDIA_HOSTS))
    channels_allow_loopback: bool = False
    sms_url: str | None = None
    sms_token: str | None = None
    sms_sender: str | None = None
    testing: bool = False
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_env(cls) -> Config:
        """Read every setting from the process environment."""
        env = _env("JAUAP_ENV", "development") or "development"
        return cls(
            env=env,
            secret_key=_env("JAUAP_SECRET_KEY", DEFAULT_SECRET) or DEFAULT_SECRET,
            debug=_env_bool("JAUAP_DEBUG", False),
            instance_path=_env("JAUAP_INSTANCE_PATH", str(REPO_ROOT / "instance")) or "",
            database_url=_env("DATABASE_URL"),
            redis_url=_env("JAUAP_REDIS_URL"),
            redis_channel=_env("JAUAP_REDIS_CHANNEL", "jauap") or "jauap",
            spatialite_library=_env("SPATIALITE_LIBRARY_PATH", "mod_spatialite") or "mod_spatialite",
            sector_file=_env("JAUAP_SECTOR_FILE", str(REPO_ROOT / "sectors_geojson" / "turkestan.geojson"))
            or "",
            sector_tolerance_m=_env_float("JAUAP_SECTOR_TOLERANCE_M", 150.0),
            similar_radius_m=_env_float("JAUAP_SIMILAR_RADIUS_M", 50.0),
            reg_prefix=_env("JAUAP_REG_PREFIX", "TRK") or "TRK",
            default_locale=_env("JAUAP_DEFAULT_LOCALE", "ru") or "ru",
            max_content_length=_env_int("JAUAP_MAX_CONTENT_LENGTH", 1 * 1024 * 1024),
            token_ttl_hours=_env_int("JAUAP_TOKEN_TTL_HOURS", 12),
            session_cookie_secure=_env_bool("JAUAP_SECURE_COOKIES", env == "production"),
            cors_origins=_env_list("JAUAP_CORS_ORIGINS", []),
            async_mode=_env("JAUAP_ASYNC_MODE", "threading") or "threading",
            accept_timeout_min=_env_int("JAUAP_ACCEPT_TIMEOUT_MIN", 15),
            position_min_interval_s=_env_float("JAUAP_POSITION_MIN_INTERVAL_S", 10.0),
            position_retention_days=_env_int("JAUAP_POSITION_RETENTION_DAYS", 30),
            position_stale_min=_env_int("JAUAP_POSITION_STALE_MIN", 10),
            connection_sweep_s=_env_float("JAUAP_CONNECTION_SWEEP_S", 2.0),
            tile_url=_env("JAUAP_TILE_URL"),
            at_risk_share=_env_float("JAUAP_AT_RISK_SHARE", 0.75),
            geofence_radius_m=_env_float("JAUAP_GEOFENCE_RADIUS_M", 100.0),
            geofence_max_accuracy_m=_env_float("JAUAP_GEOFENCE_MAX_ACCURACY_M", 500.0),
            callback_sample_share=_env_float("JAUAP_CALLBACK_SAMPLE_SHARE", 0.1),
            callback_per_day=_env_int("JAUAP_CALLBACK_PER_DAY", 0),
            vapid_subject=_env("JAUAP_VAPID_SUBJECT", "mailto:jauap@localhost") or "",
            push_hosts=_env_list("JAUAP_PUSH_HOSTS", list(DEFAULT_PUSH_HOSTS)),
            push_allow_loopback=_env_bool("JAUAP_PUSH_ALLOW_LOOPBACK", False),
            sla_warn_hours=_env_float("JAUAP_SLA_WARN_HOURS", 24.0),
            outbox_interval_s=_env_float("JAUAP_OUTBOX_INTERVAL_S", 1.5),
            outbox_max_attempts=_env_int("JAUAP_OUTBOX_MAX_ATTEMPTS", 8),
            report_limits=_env("JAUAP_REPORT_LIMITS", "5/600,50/86400") or "5/600,50/86400",
            login_limits=_env("JAUAP_LOGIN_LIMITS", "10/60,100/3600") or "",
            appeal_limits=_env("JAUAP_APPEAL_LIMITS", "120/60") or "",
            open311_limits=_env("JAUAP_OPEN311_LIMITS", "60/60,5000/86400") or "",
            proxy_hops=_env_int("JAUAP_PROXY_HOPS", 0),
            db_connect_timeout_s=_env_int("JAUAP_DB_CONNECT_TIMEOUT_S", 5),
            db_statement_timeout_ms=_env_int("JAUAP_DB_STATEMENT_TIMEOUT_MS", 30_000),
            db_lock_timeout_ms=_env_int("JAUAP_DB_LOCK_TIMEOUT_MS", 10_000),
            db_idle_in_transaction_timeout_ms=_env_int("JAUAP_DB_IDLE_IN_TRANSACTION_TIMEOUT_MS", 60_000),
            feedback_window_days=_env_int("JAUAP_FEEDBACK_WINDOW_DAYS", 15),
            public_url=_env("JAUAP_PUBLIC_URL", "http://localhost:5000") or "",
            telegram_bot_token=_env("JAUAP_TELEGRAM_BOT_TOKEN"),
            telegram_secret=_env("JAUAP_TELEGRAM_SECRET"),
            telegram_api_base=_env("JAUAP_TELEGRAM_API_BASE", "https://api.telegram.org") or "",
            meta_app_secret=_env("JAUAP_META_APP_SECRET"),
            meta_verify_token=_env("JAUAP_META_VERIFY_TOKEN"),
            meta_page_token=_env("JAUAP_META_PAGE_TOKEN"),
            whatsapp_token=_env("JAUAP_WHATSAPP_TOKEN"),
            whatsapp_phone_id=_env("JAUAP_WHATSAPP_PHONE_ID"),
            whatsapp_template=_env("JAUAP_WHATSAPP_TEMPLATE"),
            graph_api_base=_env("JAUAP_GRAPH_API_BASE", "https://graph.facebook.com/v21.0") or "",
            media_hosts=_env_list("JAUAP_CHANNEL_MEDIA_HOSTS", list(DEFAULT_MEDIA_HOSTS)),
            channels_allow_loopback=_env_bool("JAUAP_CHANNELS_ALLOW_LOOPBACK", False),
            sms_url=_env("JAUAP_SMS_URL"),
            sms_token=_env("JAUAP_SMS_TOKEN"),
            sms_sender=_env("JAUAP_SMS_SENDER"),
        )

    @property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to a SpatiaLite file in the instance folder."""
        if self.database_url:
            url = self.database_url
            # Platforms hand out postgres:// URLs; SQLAlchemy wants an explicit driver.
            if url.startswith("postgres://"):
                url = "postgresql+psycopg://" + url[len("postgres://") :]
            elif url.startswith("postgresql://"):
                url = "postgresql+psycopg://" + url[len("postgresql://") :]
            return url
        return f"sqlite:///{Path(self.instance_path) / 'jauap.sqlite'}"

    def check_production(self) -> None:
        """Refuse to run production on settings that would be unsafe."""
        if self.env != "production":
            return
        problems = []
        if self.secret_key == DEFAULT_SECRET or len(self.secret_key) < 32:
            problems.append("JAUAP_SECRET_KEY must be set to a random value of at least 32 characters")
        if self.debug:
            problems.append("JAUAP_DEBUG must be off")
        if not self.session_cookie_secure:
            problems.append("JAUAP_SECURE_COOKIES must be on (the site is served over TLS)")
        if "*" in self.cors_origins:
            problems.append("JAUAP_CORS_ORIGINS must list origins explicitly, never '*'")
        if self.push_allow_loopback:
            problems.append("JAUAP_PUSH_ALLOW_LOOPBACK must be off (the worker would POST to loopback URLs)")
        if self.channels_allow_loopback:
            problems.append("JAUAP_CHANNELS_ALLOW_LOOPBACK must be off (the worker would fetch loopback URLs)")
        if self.telegram_bot_token and not self.telegram_secret:
            problems.append("JAUAP_TELEGRAM_SECRET must be set with JAUAP_TELEGRAM_BOT_TOKEN (it authenticates the "
                            "webhook)")
        replies_out = self.telegram_bot_token or self.whatsapp_token or self.meta_page_token or self.sms_url
        if replies_out and not self.public_url.startswith("https://"):
            problems.append("JAUAP_PUBLIC_URL must be the https:// address citizens open tracking links at")
        from server.ratelimit import parse_limits  # here: the settings module stays free of Flask imports

        if not self.login_limits.strip():
            problems.append("JAUAP_LOGIN_LIMITS must not be empty (logins would be open to password guessing)")
        for name, spec in (("JAUAP_LOGIN_LIMITS", self.login_limits), ("JAUAP_APPEAL_LIMITS", self.appeal_limits),
                           ("JAUAP_OPEN311_LIMITS", self.open311_limits)):
            try:
                parse_limits(spec)
            except ValueError:
                problems.append(f"{name} must look like '10/60,100/3600' (count/seconds, comma-separated)")
        # The CSP admits the tile host for images: over plain http the tiles could be swapped in transit.
        if self.tile_url and not self.tile_url.startswith("https://"):
            problems.append("JAUAP_TILE_URL must be an https:// URL")
        # Listed origins may write with the staff's cookie (server/hardening.py): only TLS sites.
        if any(not origin.startswith("https://") for origin in self.cors_origins if origin != "*"):
            problems.append("JAUAP_CORS_ORIGINS must list https:// origins only")
        if problems:
            raise UnsafeConfigError("refusing to start in production: " + "; ".join(problems))

    def postgres_connect_args(self) -> dict:
        """libpq parameters: connect and statement limits, and TCP probes for a database host that vanished.

        ``connect_timeout`` covers a server that accepts but never completes the start-up;
        ``statement_timeout`` and ``lock_timeout`` a query stuck on the server (a lock held by a
        transaction that will not end); ``idle_in_transaction_session_timeout`` such a transaction
        itself; keepalives and ``tcp_user_timeout`` a host that stopped answering at the TCP level.
        A limit of 0 turns it off (PostgreSQL's own meaning).
        """
        options = " ".join(f"-c {name}={value}" for name, value in (
            ("statement_timeout", self.db_statement_timeout_ms),
            ("lock_timeout", self.db_lock_timeout_ms),
            ("idle_in_transaction_session_timeout", self.db_idle_in_transaction_timeout_ms)))
        args: dict = {"options": options, "keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10,
                      "keepalives_count": 3, "tcp_user_timeout": 30_000}
        if self.db_connect_timeout_s > 0:
            args["connect_timeout"] = self.db_connect_timeout_s
        return args

    def to_flask(self) -> dict:
        """Return the Flask/extension config mapping for these settings."""
        url = self.resolved_database_url
        engine_options: dict = {}
        if url.startswith("sqlite"):
            try:
                # The system sqlite3 module cannot load extensions on this Python build;
                # pysqlite3 can, and is DB-API compatible (ARCHITECTURE.md §6).
                import pysqlite3.dbapi2 as sqlite_module  # type: ignore[import-not-found]
            except ImportError:  # pragma: no cover - non-Linux developer machines
                import sqlite3 as sqlite_module
            engine_options = {"module": sqlite_module, "connect_args": {"timeout": 30, "check_same_thread": False}}
        else:
            engine_options = {"pool_pre_ping": True, "pool_size": 10, "max_overflow": 20,
                              # a request waits this long for a pooled connection, then gets a 503
                              "pool_timeout": max(1, self.db_connect_timeout_s * 2),
                              "connect_args": self.postgres_connect_args()}
        cfg = {
            "JAUAP_ENV": self.env,
            "SECRET_KEY": self.secret_key,
            "DEBUG": self.debug,
            "TESTING": self.testing,
            "SQLALCHEMY_DATABASE_URI": url,
            "SQLALCHEMY_ENGINE_OPTIONS": engine_options,
            "SQLALCHEMY_TRACK_MODIFICATIONS": False,
            "JAUAP_REDIS_URL": self.redis_url,
            "JAUAP_REDIS_CHANNEL": self.redis_channel,
            "JAUAP_SPATIALITE_LIBRARY": self.spatialite_library,
            "JAUAP_SECTOR_FILE": self.sector_file,
            "JAUAP_SECTOR_TOLERANCE_M": self.sector_tolerance_m,
            "JAUAP_SIMILAR_RADIUS_M": self.similar_radius_m,
            "JAUAP_REG_PREFIX": self.reg_prefix,
            "JAUAP_TIMEZONE": self.timezone,
            "JAUAP_TOKEN_TTL_HOURS": self.token_ttl_hours,
            "JAUAP_CORS_ORIGINS": self.cors_origins,
            "JAUAP_ASYNC_MODE": self.async_mode,
            "JAUAP_ACCEPT_TIMEOUT_MIN": self.accept_timeout_min,
            "JAUAP_POSITION_MIN_INTERVAL_S": self.position_min_interval_s,
            "JAUAP_POSITION_RETENTION_DAYS": self.position_retention_days,
            "JAUAP_POSITION_STALE_MIN": self.position_stale_min,
            "JAUAP_CONNECTION_SWEEP_S": self.connection_sweep_s,
            "JAUAP_TILE_URL": self.tile_url,
            "JAUAP_AT_RISK_SHARE": self.at_risk_share,
            "JAUAP_GEOFENCE_RADIUS_M": self.geofence_radius_m,
            "JAUAP_GEOFENCE_MAX_ACCURACY_M": self.geofence_max_accuracy_m,
            "JAUAP_CALLBACK_SAMPLE_SHARE": self.callback_sample_share,
            "JAUAP_CALLBACK_PER_DAY": self.callback_per_day,
            "JAUAP_VAPID_SUBJECT": self.vapid_subject,
            "JAUAP_PUSH_HOSTS": self.push_hosts,
            "JAUAP_PUSH_ALLOW_LOOPBACK": self.push_allow_loopback,
            "JAUAP_SLA_WARN_HOURS": self.sla_warn_hours,
            "JAUAP_OUTBOX_INTERVAL_S": self.outbox_interval_s,
            "JAUAP_OUTBOX_MAX_ATTEMPTS": self.outbox_max_attempts,
            "JAUAP_REPORT_LIMITS": self.report_limits,
            "JAUAP_LOGIN_LIMITS": self.login_limits,
            "JAUAP_APPEAL_LIMITS": self.appeal_limits,
            "JAUAP_OPEN311_LIMITS": self.open311_limits,
            "JAUAP_PROXY_HOPS": self.proxy_hops,
            "JAUAP_DB_CONNECT_TIMEOUT_S": self.db_connect_timeout_s,
            "JAUAP_DB_STATEMENT_TIMEOUT_MS": self.db_statement_timeout_ms,
            "JAUAP_DB_LOCK_TIMEOUT_MS": self.db_lock_timeout_ms,
            "JAUAP_DB_IDLE_IN_TRANSACTION_TIMEOUT_MS": self.db_idle_in_transaction_timeout_ms,
            "JAUAP_FEEDBACK_WINDOW_DAYS": self.feedback_window_days,
            "JAUAP_PUBLIC_URL": self.public_url,
            "JAUAP_TELEGRAM_BOT_TOKEN": self.telegram_bot_token,
            "JAUAP_TELEGRAM_SECRET": self.telegram_secret,
            "JAUAP_TELEGRAM_API_BASE": self.telegram_api_base,
            "JAUAP_META_APP_SECRET": self.meta_app_secret,
            "JAUAP_META_VERIFY_TOKEN": self.meta_verify_token,
            "JAUAP_META_PAGE_TOKEN": self.meta_page_token,
            "JAUAP_WHATSAPP_TOKEN": self.whatsapp_token,
            "JAUAP_WHATSAPP_PHONE_ID": self.whatsapp_phone_id,
            "JAUAP_WHATSAPP_TEMPLATE": self.whatsapp_template,
            "JAUAP_GRAPH_API_BASE": self.graph_api_base,
            "JAUAP_CHANNEL_MEDIA_HOSTS": self.media_hosts,
            "JAUAP_CHANNELS_ALLOW_LOOPBACK": self.channels_allow_loopback,
            "JAUAP_SMS_URL": self.sms_url,
            "JAUAP_SMS_TOKEN": self.sms_token,
            "JAUAP_SMS_SENDER": self.sms_sender,
            "MAX_CONTENT_LENGTH": self.max_content_length,
            "BABEL_DEFAULT_LOCALE": self.default_locale,
            "BABEL_DEFAULT_TIMEZONE": self.timezone,
            "BABEL_TRANSLATION_DIRECTORIES": str(Path(__file__).parent / "translations"),
            "SESSION_COOKIE_HTTPONLY": True,
            "SESSION_COOKIE_SAMESITE": "Lax",
            "SESSION_COOKIE_SECURE": self.session_cookie_secure,
            "SESSION_COOKIE_NAME": "jauap_session",
            "REMEMBER_COOKIE_HTTPONLY": True,
            "REMEMBER_COOKIE_SECURE": self.session_cookie_secure,
            "REMEMBER_COOKIE_SAMESITE": "Lax",
            "WTF_CSRF_CHECK_DEFAULT": False,  # checked in auth.before_request for cookie sessions only
            "WTF_CSRF_TIME_LIMIT": None,
            "WTF_CSRF_HEADERS": ["X-CSRFToken", "X-CSRF-Token"],
            "JSON_SORT_KEYS": False,
        }
        cfg.update(self.extra)
        return cfg


def TestConfig(database_url: str, instance_path: str, **extra) -> Config:  # noqa: N802 - reads as a class
    """Settings for the test-suite: a given database, a throwaway instance folder."""
    return Config(
        env="testing",
        secret_key="test-secret-key-not-for-production-use-0123456789",  # noqa: S106
        testing=True,
        instance_path=instance_path,
        database_url=database_url,
        # High enough that no test is throttled by accident; tests of the limits pass low ones.
        login_limits="100000/60",
        appeal_limits="100000/60",
        open311_limits="100000/60",
        extra=extra,
    )
