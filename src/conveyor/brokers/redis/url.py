"""Parse a Redis broker URL into connection-pool settings and the key prefix.

Accepted forms (query options may be combined with ``&``)::

    redis://[[user]:password@]host[:port][/db]      rediss://... (TLS)
    unix://[[user]:password@]/path/to/redis.sock[?db=N]
    ?prefix=myapp                  keys live under {myapp}: (default {conveyor}:)
    ?socket_timeout=10&socket_connect_timeout=5&health_check_interval=15
    ?ssl_cert_reqs=required&ssl_ca_certs=/path/ca.pem    (rediss only)
    ?wait_replicas=1&wait_timeout_ms=500   enqueue and settle wait for a replica (Redis WAIT)

Sentinel and Cluster URLs (``sentinel://``, ``redis+sentinel://``, ``redis+cluster://``) are
parsed by ha_url.py into the same ``RedisURL``. Transport options (Celery's
``broker_transport_options``) are merged over the URL's: see ``TRANSPORT_OPTIONS``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit

from ...exceptions import ConfigurationError

DEFAULT_PREFIX = "conveyor"
SCHEMES = ("redis", "rediss", "unix")
# Connection defaults: a dead server or network is reported within seconds, never a hang.
# Blocking commands block for less than the socket timeout (see broker.py).
DEFAULTS: dict[str, float] = {
    "socket_timeout": 10.0,
    "socket_connect_timeout": 5.0,
    "health_check_interval": 15,
}
_FLOAT_OPTIONS = ("socket_timeout", "socket_connect_timeout")
_NUMBER_OPTIONS = frozenset({*_FLOAT_OPTIONS, "db", "health_check_interval", "max_connections"})
# Options handed on to redis-py as they are (it parses them); anything else is a typo.
_PASSED_ON = frozenset(
    {
        "db",
        "password",
        "username",
        "client_name",
        "max_connections",
        "health_check_interval",
        "ssl_cert_reqs",
        "ssl_ca_certs",
        "ssl_ca_path",
        "ssl_certfile",
        "ssl_keyfile",
        "ssl_check_hostname",
        "ssl_min_version",
        *_FLOAT_OPTIONS,
    }
)


#: ``broker_transport_options`` keys the Redis broker reads (Celery's names where it has one).
#: Other keys are warned about by config.py and not used.
TRANSPORT_OPTIONS = frozenset({"master_name", "sentinel_kwargs", "wait_replicas", "wait_timeout_ms"})
DEFAULT_WAIT_TIMEOUT_MS = 1000
Topology = Literal["server", "sentinel", "cluster"]


@dataclass(frozen=True, slots=True)
class RedisURL:
    """A parsed broker URL: ``pool_url`` (for redis-py, our options removed), ``prefix``,
    ``where`` (host:port or socket path, for messages: never the password) and ``options``.

    For Sentinel and Cluster ``pool_url`` is empty: ``nodes`` are the sentinels (or the cluster's
    seed nodes), ``options`` the typed keyword arguments of every Redis connection, and
    ``sentinel_options`` those of the connections to the sentinels.
    """

    pool_url: str
    prefix: str
    where: str
    socket_timeout: float
    options: dict[str, Any] = field(default_factory=dict)
    topology: Topology = "server"
    nodes: tuple[tuple[str, int], ...] = ()
    master_name: str = ""
    sentinel_options: dict[str, Any] = field(default_factory=dict)
    wait_replicas: int = 0  # 0: confirm writes without waiting for replicas
    wait_timeout_ms: int = DEFAULT_WAIT_TIMEOUT_MS


def parse_redis_url(url: str, transport_options: dict[str, Any] | None = None) -> RedisURL:
    """Check a Redis URL; raises ``ConfigurationError`` with a one-line reason.

    >>> parse_redis_url("redis://localhost:6390/2?prefix=shop").where
    'localhost:6390'
    >>> parse_redis_url("redis+sentinel://s1:26379,s2/mymaster/0").nodes
    (('s1', 26379), ('s2', 26379))
    """
    from .ha_url import HA_SCHEMES, parse_ha_url

    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme in HA_SCHEMES:
        return parse_ha_url(url, transport_options or {})
    parsed = _parse_server_url(url)
    extra = transport_options or {}
    if "master_name" in extra or "sentinel_kwargs" in extra:
        raise ConfigurationError(
            f"bad Redis URL {redact(url)!r}: master_name/sentinel_kwargs need a sentinel:// URL"
        )
    replicas, timeout_ms = wait_options(url, parsed.wait_replicas, parsed.wait_timeout_ms, extra)
    return replace(parsed, wait_replicas=replicas, wait_timeout_ms=timeout_ms)


def wait_options(url: str, replicas: int, timeout_ms: int, extra: dict[str, Any]) -> tuple[int, int]:
    """``wait_replicas``/``wait_timeout_ms`` from transport options (over the URL's), checked."""
    replicas = _whole(url, "wait_replicas", extra.get("wait_replicas", replicas), minimum=0)
    timeout_ms = _whole(url, "wait_timeout_ms", extra.get("wait_timeout_ms", timeout_ms), minimum=1)
    return replicas, timeout_ms


def _whole(url: str, name: str, value: object, minimum: int) -> int:
    try:
        number = int(str(value))
        if number < minimum:
            raise ValueError
    except ValueError:
        raise ConfigurationError(
            f"bad Redis URL {redact(url)!r}: {name} must be a whole number >= {minimum}, got {value!r}"
        ) from None
    return number


def _parse_server_url(url: str) -> RedisURL:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ConfigurationError(f"bad Redis URL {redact(url)!r}: {exc}") from None
    if parts.scheme not in SCHEMES:
        raise ConfigurationError(
            f"bad Redis URL {redact(url)!r}: scheme must be redis://, rediss://, unix://, "
            "sentinel://, redis+sentinel://, redis+cluster:// (or rediss+...)"
        )
    query = parse_qsl(parts.query, keep_blank_values=True)
    prefix = DEFAULT_PREFIX
    passed: list[tuple[str, str]] = []
    options: dict[str, Any] = dict(DEFAULTS)
    waits: dict[str, str] = {}
    for name, value in query:
        if name == "prefix":
            prefix = value
        elif name in ("wait_replicas", "wait_timeout_ms"):
            waits[name] = value
        elif name in _PASSED_ON:
            if name.startswith("ssl_") and parts.scheme != "rediss":
                raise ConfigurationError(f"bad Redis URL {redact(url)!r}: {name} needs rediss://")
            if name in _NUMBER_OPTIONS:
                check_number(url, name, value, positive=name in _FLOAT_OPTIONS)
            passed.append((name, value))
            options.pop(name, None)  # the URL's value wins over our default
        else:
            raise ConfigurationError(f"bad Redis URL {redact(url)!r}: unknown option {name!r}")
    check_prefix(url, prefix)
    if parts.scheme == "unix":
        if not parts.path:
            raise ConfigurationError(
                f"bad Redis URL {redact(url)!r}: no socket path (unix:///path/redis.sock)"
            )
        where = parts.path
    else:
        db = parts.path.lstrip("/")
        if db and not db.isdigit():
            raise ConfigurationError(f"bad Redis URL {redact(url)!r}: database must be a number, got {db!r}")
        where = f"{parts.hostname or 'localhost'}:{port or 6379}"
    timeout = dict(passed).get("socket_timeout")
    socket_timeout = float(timeout) if timeout is not None else DEFAULTS["socket_timeout"]
    # Rebuilt by hand: urlunsplit would turn unix:///path into unix:/path.
    query_string = urlencode(passed)
    pool_url = f"{parts.scheme}://{parts.netloc}{parts.path}" + (f"?{query_string}" if query_string else "")
    replicas, timeout_ms = wait_options(url, 0, DEFAULT_WAIT_TIMEOUT_MS, waits)
    return RedisURL(
        pool_url, prefix, where, socket_timeout, options, wait_replicas=replicas, wait_timeout_ms=timeout_ms
    )


def check_prefix(url: str, prefix: str) -> None:
    if not prefix or any(c in prefix for c in "{}\r\n "):
        raise ConfigurationError(
            f"bad Redis URL {redact(url)!r}: prefix must be non-empty, without braces or spaces"
        )


def check_number(url: str, name: str, value: str, positive: bool) -> None:
    try:
        number = float(value)
        if number < 0 or (positive and number == 0):
            raise ValueError
    except ValueError:
        kind = "a positive" if positive else "a non-negative"
        raise ConfigurationError(
            f"bad Redis URL {redact(url)!r}: {name} must be {kind} number, got {value!r}"
        ) from None


def redact(url: str) -> str:
    """The URL without its passwords (user info and ``?password=``/``?sentinel_password=``)."""
    from .. import redacted_url

    return redacted_url(url)
