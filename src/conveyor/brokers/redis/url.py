"""Parse a Redis broker URL into connection-pool settings and the key prefix.

Accepted forms (query options may be combined with ``&``)::

    redis://[[user]:password@]host[:port][/db]      rediss://... (TLS)
    unix://[[user]:password@]/path/to/redis.sock[?db=N]
    ?prefix=myapp                  keys live under {myapp}: (default {conveyor}:)
    ?socket_timeout=10&socket_connect_timeout=5&health_check_interval=15
    ?ssl_cert_reqs=required&ssl_ca_certs=/path/ca.pem    (rediss only)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

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


@dataclass(frozen=True, slots=True)
class RedisURL:
    """A parsed broker URL: ``pool_url`` (for redis-py, our options removed), ``prefix``,
    ``where`` (host:port or socket path, for messages: never the password) and ``options``."""

    pool_url: str
    prefix: str
    where: str
    socket_timeout: float
    options: dict[str, Any] = field(default_factory=dict)


def parse_redis_url(url: str) -> RedisURL:
    """Check a Redis URL; raises ``ConfigurationError`` with a one-line reason.

    >>> parse_redis_url("redis://localhost:6390/2?prefix=shop").where
    'localhost:6390'
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ConfigurationError(f"bad Redis URL {_redact(url)!r}: {exc}") from None
    if parts.scheme not in SCHEMES:
        raise ConfigurationError(
            f"bad Redis URL {_redact(url)!r}: scheme must be redis://, rediss:// or unix://"
        )
    query = parse_qsl(parts.query, keep_blank_values=True)
    prefix = DEFAULT_PREFIX
    passed: list[tuple[str, str]] = []
    options: dict[str, Any] = dict(DEFAULTS)
    for name, value in query:
        if name == "prefix":
            prefix = value
        elif name in _PASSED_ON:
            if name.startswith("ssl_") and parts.scheme != "rediss":
                raise ConfigurationError(f"bad Redis URL {_redact(url)!r}: {name} needs rediss://")
            if name in _NUMBER_OPTIONS:
                _check_number(url, name, value, positive=name in _FLOAT_OPTIONS)
            passed.append((name, value))
            options.pop(name, None)  # the URL's value wins over our default
        else:
            raise ConfigurationError(f"bad Redis URL {_redact(url)!r}: unknown option {name!r}")
    if not prefix or any(c in prefix for c in "{}\r\n "):
        raise ConfigurationError(
            f"bad Redis URL {_redact(url)!r}: prefix must be non-empty, without braces or spaces"
        )
    if parts.scheme == "unix":
        if not parts.path:
            raise ConfigurationError(
                f"bad Redis URL {_redact(url)!r}: no socket path (unix:///path/redis.sock)"
            )
        where = parts.path
    else:
        db = parts.path.lstrip("/")
        if db and not db.isdigit():
            raise ConfigurationError(f"bad Redis URL {_redact(url)!r}: database must be a number, got {db!r}")
        where = f"{parts.hostname or 'localhost'}:{port or 6379}"
    timeout = dict(passed).get("socket_timeout")
    socket_timeout = float(timeout) if timeout is not None else DEFAULTS["socket_timeout"]
    # Rebuilt by hand: urlunsplit would turn unix:///path into unix:/path.
    query_string = urlencode(passed)
    pool_url = f"{parts.scheme}://{parts.netloc}{parts.path}" + (f"?{query_string}" if query_string else "")
    return RedisURL(pool_url, prefix, where, socket_timeout, options)


def _check_number(url: str, name: str, value: str, positive: bool) -> None:
    try:
        number = float(value)
        if number < 0 or (positive and number == 0):
            raise ValueError
    except ValueError:
        kind = "a positive" if positive else "a non-negative"
        raise ConfigurationError(
            f"bad Redis URL {_redact(url)!r}: {name} must be {kind} number, got {value!r}"
        ) from None


def _redact(url: str) -> str:
    """The URL without its password, for error messages."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
        return urlunsplit(parts._replace(netloc=netloc))
    except ValueError:
        return url.split("@", 1)[-1]
