"""Rate limits for anonymous writers (the citizen web report), per client address.

Fixed windows: each limit ``count/seconds`` counts attempts in the current window
(``floor(now / seconds)``) and refuses once the count passes ``count``. A burst at
a window's edge can reach twice a limit; the daily limit bounds that, and the
windows need one counter each (no per-request log to keep).

Storage: Redis when ``JAUAP_REDIS_URL`` is set, so every web process shares the
counters (one ``INCR`` + ``EXPIRE`` pipeline per request); a per-process memory
table otherwise (the embedded default runs one process). A Redis that fails or
hangs (short socket timeouts) makes that request fall back to the memory table:
the limit still holds per process, and a report is never refused or delayed
because Redis is away.

The client address is the socket's peer, unless ``JAUAP_PROXY_HOPS`` says how many
trusted proxies append to ``X-Forwarded-For``: then it is the address the nearest
untrusted hop gave (counting from the right), which a client cannot forge.

Staff logins (``JAUAP_LOGIN_LIMITS``) are limited per username and per client
address. Per username, an attempt is counted before the password is checked (so
parallel guesses at one account are counted too) and given back when it succeeds.
Per address, only failures are counted (and checked before trying): a whole shift
logging in at once from the centre's one address never trips it. Appeal creation
(``JAUAP_APPEAL_LIMITS``) is counted per staff account: every caller is a
logged-in operator, and the operators share the centre's address. Open311 writes
(``JAUAP_OPEN311_LIMITS``) are counted per API key, whatever address the partner
posts from.
"""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass

from flask import Flask, Request, current_app, request

log = logging.getLogger(__name__)
_EXT = "jauap_ratelimit"


@dataclass(frozen=True)
class Limit:
    """At most ``count`` attempts per ``seconds``."""

    count: int
    seconds: int


def parse_limits(spec: str) -> list[Limit]:
    """``"5/600,50/86400"`` -> [Limit(5, 600), Limit(50, 86400)] (ValueError on a malformed spec)."""
    limits = []
    for part in spec.split(","):
        if not part.strip():
            continue
        count, seconds = part.strip().split("/")
        limit = Limit(int(count), int(seconds))
        if limit.count < 1 or limit.seconds < 1:
            raise ValueError(f"bad rate limit {part!r}")
        limits.append(limit)
    return limits


def client_address(request: Request, proxy_hops: int) -> str:
    """The client's address: the peer, or the right entry of ``X-Forwarded-For`` behind ``proxy_hops`` proxies."""
    if proxy_hops > 0:
        hops = [h.strip() for h in request.headers.get("X-Forwarded-For", "").split(",") if h.strip()]
        if len(hops) >= proxy_hops:
            return hops[-proxy_hops]
    return request.remote_addr or "unknown"


class MemoryCounters:
    """Window counters in this process (thread-safe); old windows are dropped as time passes."""

    def __init__(self):
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, int, int], int] = {}

    def incr(self, keys: list[tuple[str, int, int]], now: float) -> list[int]:
        """Add one to each (key, window length, window number) counter; return the new counts."""
        with self._lock:
            if len(self._counts) > 50_000:  # prune windows that are over
                self._counts = {k: v for k, v in self._counts.items() if (k[2] + 1) * k[1] > now}
            out = []
            for key in keys:
                self._counts[key] = self._counts.get(key, 0) + 1
                out.append(self._counts[key])
            return out

    def get(self, keys: list[tuple[str, int, int]]) -> list[int]:
        """The current counts."""
        with self._lock:
            return [self._counts.get(key, 0) for key in keys]

    def decr(self, keys: list[tuple[str, int, int]]) -> None:
        """Take one back from each counter (never below zero)."""
        with self._lock:
            for key in keys:
                if self._counts.get(key, 0) > 0:
                    self._counts[key] -= 1

    def reset(self) -> None:
        """Forget every counter (tests)."""
        with self._lock:
            self._counts.clear()


class RedisCounters:
    """Window counters in Redis, shared by every process (keys expire with their window)."""

    def __init__(self, url: str, prefix: str):
        import redis

        self.prefix = prefix
        self.client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)

    def incr(self, keys: list[tuple[str, int, int]], now: float) -> list[int]:
        """Add one to each counter in one round trip; return the new counts."""
        pipe = self.client.pipeline(transaction=False)
        for name, seconds, window in keys:
            redis_key = f"{self.prefix}:{name}:{seconds}:{window}"
            pipe.incr(redis_key)
            pipe.expire(redis_key, seconds + 60)
        replies = pipe.execute()
        return [int(v) for v in replies[0::2]]

    def get(self, keys: list[tuple[str, int, int]]) -> list[int]:
        """The current counts (one round trip)."""
        values = self.client.mget([f"{self.prefix}:{n}:{s}:{w}" for n, s, w in keys])
        return [int(v) if v is not None else 0 for v in values]

    def decr(self, keys: list[tuple[str, int, int]]) -> None:
        """Take one back from each counter (one round trip)."""
        pipe = self.client.pipeline(transaction=False)
        for name, seconds, window in keys:
            pipe.decr(f"{self.prefix}:{name}:{seconds}:{window}")
        pipe.execute()


class RateLimiter:
    """Counts attempts per (scope, client) against a list of limits."""

    def __init__(self, redis_url: str | None = None, prefix: str = "jauap:rl"):
        self.memory = MemoryCounters()
        self.redis = RedisCounters(redis_url, prefix) if redis_url else None

    @staticmethod
    def _keys(scope: str, client: str, limits: list[Limit], now: float) -> list[tuple[str, int, int]]:
        return [(f"{scope}:{client}", lim.seconds, int(now // lim.seconds)) for lim in limits]

    def hit(self, scope: str, client: str, limits: list[Limit], now: float) -> int | None:
        """Count one attempt; None when it is within every limit, else seconds until the refusing window ends."""
        keys = self._keys(scope, client, limits, now)
        counts = None
        if self.redis is not None:
            try:
                counts = self.redis.incr(keys, now)
            except Exception as exc:  # any Redis failure (down, hung, refused): count here instead
                log.warning("rate limit store unavailable, counting in this process: %s", exc)
        if counts is None:
            counts = self.memory.incr(keys, now)
        waits = [math.ceil((window + 1) * seconds - now)
                 for (_k, seconds, window), count, lim in zip(keys, counts, limits, strict=True) if count > lim.count]
        return max(waits) if waits else None

    def peek(self, scope: str, client: str, limits: list[Limit], now: float) -> int | None:
        """Like ``hit`` without counting: None when another attempt is allowed, else seconds to wait."""
        keys = self._keys(scope, client, limits, now)
        counts = None
        if self.redis is not None:
            try:
                counts = self.redis.get(keys)
            except Exception as exc:  # as in hit(): the process's own table stands in
                log.warning("rate limit store unavailable, reading this process's counts: %s", exc)
        if counts is None:
            counts = self.memory.get(keys)
        waits = [math.ceil((window + 1) * seconds - now)
                 for (_k, seconds, window), count, lim in zip(keys, counts, limits, strict=True) if count >= lim.count]
        return max(waits) if waits else None

    def refund(self, scope: str, client: str, limits: list[Limit], now: float) -> None:
        """Give back an attempt counted by ``hit`` at the same ``now`` (it turned out legitimate)."""
        keys = self._keys(scope, client, limits, now)
        if self.redis is not None:
            try:
                self.redis.decr(keys)
                return
            except Exception as exc:  # the hit fell back to memory too, most likely
                log.warning("rate limit store unavailable, refunding in this process: %s", exc)
        self.memory.decr(keys)

    def reset(self) -> None:
        """Forget the in-process counters (tests)."""
        self.memory.reset()


def limiter(app: Flask | None = None) -> RateLimiter:
    """The app's limiter, made on first use (Redis when JAUAP_REDIS_URL is set)."""
    app = app or current_app
    found = app.extensions.get(_EXT)
    if found is None:
        prefix = f"{app.config.get('JAUAP_REDIS_CHANNEL') or 'jauap'}:rl"
        found = app.extensions[_EXT] = RateLimiter(app.config.get("JAUAP_REDIS_URL"), prefix)
    return found


class TooManyAttempts(Exception):
    """A login or write over its limit: 429 with ``Retry-After`` (server.hardening renders it)."""

    def __init__(self, code: str, retry_after: int):
        super().__init__(code)
        self.code = code
        self.retry_after = max(1, int(retry_after))

    @property
    def minutes(self) -> int:
        """The wait in whole minutes, for the message."""
        return max(1, math.ceil(self.retry_after / 60))


def _username_key(username: str) -> str:
    # Case-folded like the lookup would be; bounded so a huge field cannot make a huge key.
    return username.strip().casefold()[:150]


def check_login(username: str, now: float) -> None:
    """Before checking a password: TooManyAttempts when this address or ``username`` is over JAUAP_LOGIN_LIMITS.

    Counts the attempt for the username; call ``login_result`` with the same ``now`` afterwards.
    """
    limits = parse_limits(current_app.config["JAUAP_LOGIN_LIMITS"])
    if not limits:
        return
    address = client_address(request, current_app.config["JAUAP_PROXY_HOPS"])
    rl = limiter()
    wait = rl.peek("login-addr", address, limits, now)
    if wait is None:
        wait = rl.hit("login-user", _username_key(username), limits, now)
    if wait is not None:
        raise TooManyAttempts("login_rate_limited", wait)


def login_result(username: str, ok: bool, now: float) -> None:
    """After checking the password: a right one gives the username's attempt back, a wrong one counts
    against the client address."""
    limits = parse_limits(current_app.config["JAUAP_LOGIN_LIMITS"])
    if not limits:
        return
    rl = limiter()
    if ok:
        rl.refund("login-user", _username_key(username), limits, now)
    else:
        rl.hit("login-addr", client_address(request, current_app.config["JAUAP_PROXY_HOPS"]), limits, now)


def check_appeal(staff_id: int, now: float) -> None:
    """Count one appeal creation by staff member ``staff_id``; TooManyAttempts past JAUAP_APPEAL_LIMITS."""
    limits = parse_limits(current_app.config["JAUAP_APPEAL_LIMITS"])
    wait = limiter().hit("appeal", str(staff_id), limits, now) if limits else None
    if wait is not None:
        raise TooManyAttempts("rate_limited", wait)


def check_open311(key_id: int, now: float) -> int | None:
    """Count one Open311 write by API key ``key_id``; seconds to wait past JAUAP_OPEN311_LIMITS, else None."""
    limits = parse_limits(current_app.config["JAUAP_OPEN311_LIMITS"])
    return limiter().hit("open311", str(key_id), limits, now) if limits else None
