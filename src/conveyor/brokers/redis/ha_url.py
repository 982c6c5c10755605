"""Parse Sentinel and Cluster broker URLs into a ``RedisURL`` (url.py parses single servers).

Accepted forms::

    sentinel://[[user]:password@]host:26379[/db];sentinel://host2:26379    Celery's form; the
        master's name comes from broker_transport_options={"master_name": ...} or ?master_name=
    redis+sentinel://[[user]:password@]host:26379,host2:26379/mymaster[/db]   one URL
    rediss+sentinel://...                         the same over TLS (to Redis and to the sentinels)
    redis+cluster://[[user]:password@]host:7000,host2:7001[/]   rediss+cluster://  (TLS)

The user and password are Redis's; the sentinels' own are ``?sentinel_password=`` (and
``sentinel_username=``) or Celery's ``sentinel_kwargs={"password": ...}``. Query options are
those of url.py plus ``master_name``, ``sentinel_password`` and ``sentinel_username``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, unquote

from ...exceptions import ConfigurationError
from .url import (
    DEFAULT_PREFIX,
    DEFAULT_WAIT_TIMEOUT_MS,
    DEFAULTS,
    RedisURL,
    Topology,
    check_number,
    check_prefix,
    wait_options,
)

HA_SCHEMES = frozenset({"sentinel", "redis+sentinel", "rediss+sentinel", "redis+cluster", "rediss+cluster"})
SENTINEL_PORT = 26379
CLUSTER_PORT = 6379
_FLOATS = frozenset({"socket_timeout", "socket_connect_timeout"})
_INTS = frozenset({"health_check_interval", "max_connections", "db"})
_STRINGS = frozenset(
    {
        "client_name",
        "username",
        "password",
        "ssl_cert_reqs",
        "ssl_ca_certs",
        "ssl_ca_path",
        "ssl_certfile",
        "ssl_keyfile",
        "ssl_min_version",
    }
)
_OURS = frozenset({"prefix", "master_name", "sentinel_password", "sentinel_username"})
_WAITS = frozenset({"wait_replicas", "wait_timeout_ms"})


def parse_ha_url(url: str, transport: dict[str, Any]) -> RedisURL:
    """A Sentinel or Cluster URL, checked; ``ConfigurationError`` with a one-line reason.

    >>> parse_ha_url("redis+cluster://a:7000,b:7001/", {}).topology
    'cluster'
    """
    scheme = url.split("://", 1)[0]
    if scheme == "sentinel":
        nodes, auth, path, query = _celery_sentinel(url)
        topology: Topology = "sentinel"
        tls = False
    else:
        base, _, rest = url.partition("://")
        tls = base.startswith("rediss+")
        topology = "sentinel" if base.endswith("+sentinel") else "cluster"
        netloc, path, query = _split(rest)
        auth, nodes = _netloc(url, netloc, SENTINEL_PORT if topology == "sentinel" else CLUSTER_PORT)
    values = _query(url, query, tls)
    options: dict[str, Any] = dict(DEFAULTS)
    options.update(auth)
    options.update(_typed(url, {k: v for k, v in values.items() if k not in _OURS | _WAITS}))
    if tls:
        options["ssl"] = True
    segments = [s for s in path.split("/") if s]
    master = ""
    if topology == "sentinel":
        master = _sentinel_path(url, scheme, segments, values, transport, options)
    else:
        _check_cluster(url, segments, values, transport, options)
    prefix = values.get("prefix", DEFAULT_PREFIX)
    check_prefix(url, prefix)
    waits: dict[str, Any] = {k: values[k] for k in _WAITS if k in values}
    waits.update({k: transport[k] for k in _WAITS if k in transport})
    replicas, timeout_ms = wait_options(url, 0, DEFAULT_WAIT_TIMEOUT_MS, waits)
    sentinel_options = _sentinel_options(url, options, values, transport) if topology == "sentinel" else {}
    where = ",".join(f"{host}:{port}" for host, port in nodes)
    where = f"{master} via sentinels {where}" if topology == "sentinel" else f"cluster {where}"
    return RedisURL(
        "",
        prefix,
        where,
        float(options["socket_timeout"]),
        options,
        topology=topology,
        nodes=tuple(nodes),
        master_name=master,
        sentinel_options=sentinel_options,
        wait_replicas=replicas,
        wait_timeout_ms=timeout_ms,
    )


def _sentinel_path(
    url: str,
    scheme: str,
    segments: list[str],
    values: dict[str, str],
    transport: dict[str, Any],
    options: dict[str, Any],
) -> str:
    """The master's name (from the path, ?master_name= or the transport options, which win);
    sets ``options["db"]`` from the path."""
    master = values.get("master_name", "")
    if scheme != "sentinel":  # redis+sentinel://hosts/master[/db]
        if not segments:
            raise _bad(url, "no master name (redis+sentinel://host:26379/mymaster/0)")
        master, segments = unquote(segments[0]), segments[1:]
    master = str(transport.get("master_name", master))
    if not master:
        raise _bad(url, 'no master name: add broker_transport_options={"master_name": "mymaster"}')
    if segments:
        options["db"] = _db(url, segments)
    return master


def _check_cluster(
    url: str, segments: list[str], values: dict[str, str], transport: dict[str, Any], options: dict[str, Any]
) -> None:
    """A cluster has one database and no master name; drops ``db`` (redis-py refuses it)."""
    if "master_name" in values or "master_name" in transport or "sentinel_kwargs" in transport:
        raise _bad(url, "master_name/sentinel_kwargs are for Sentinel, not Cluster")
    if (segments and _db(url, segments) != 0) or options.get("db", 0) != 0:
        raise _bad(url, "a Redis Cluster has only database 0")
    options.pop("db", None)


def _celery_sentinel(url: str) -> tuple[list[tuple[str, int]], dict[str, str], str, str]:
    """``sentinel://a:26379;sentinel://b:26379``: one sentinel per URL; the first URL that has a
    password, path or query gives them (Celery reads them the same way)."""
    nodes: list[tuple[str, int]] = []
    auth: dict[str, str] = {}
    path = query = ""
    for raw in url.split(";"):
        part = raw.strip()
        if not part.startswith("sentinel://"):
            raise _bad(url, f"every part of a ';'-separated sentinel URL must be sentinel://, got {part!r}")
        netloc, part_path, part_query = _split(part.split("://", 1)[1])
        part_auth, part_nodes = _netloc(url, netloc, SENTINEL_PORT)
        if len(part_nodes) != 1:
            raise _bad(url, "one host per sentinel:// (separate sentinels with ';')")
        nodes += part_nodes
        auth = auth or part_auth
        path = path or part_path
        query = query or part_query
    return nodes, auth, path, query


def _split(rest: str) -> tuple[str, str, str]:
    """``user:pw@h1:1,h2:2/path?query`` -> (netloc, path, query)."""
    rest, _, query = rest.partition("?")
    netloc, slash, path = rest.partition("/")
    return netloc, slash + path, query


def _netloc(url: str, netloc: str, default_port: int) -> tuple[dict[str, str], list[tuple[str, int]]]:
    userinfo, at, hosts = netloc.rpartition("@")
    auth: dict[str, str] = {}
    if at:
        user, colon, password = userinfo.partition(":")
        if user:
            auth["username"] = unquote(user)
        if colon:
            auth["password"] = unquote(password)
    nodes = [_host_port(url, item, default_port) for item in hosts.split(",") if item.strip()]
    if not nodes:
        raise _bad(url, "no hosts")
    return auth, nodes


def _host_port(url: str, item: str, default_port: int) -> tuple[str, int]:
    item = item.strip()
    if item.startswith("["):  # [::1]:26379
        host, _, rest = item[1:].partition("]")
        port_text = rest.removeprefix(":")
    else:
        host, _, port_text = item.partition(":")
    if not host:
        raise _bad(url, f"empty host in {item!r}")
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise _bad(url, f"bad port {port_text!r}")
    return host, int(port_text)


def _query(url: str, query: str, tls: bool) -> dict[str, str]:
    values: dict[str, str] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name not in _FLOATS | _INTS | _STRINGS | _OURS | _WAITS and name != "ssl_check_hostname":
            raise _bad(url, f"unknown option {name!r}")
        if name.startswith("ssl_") and not tls:
            raise _bad(url, f"{name} needs rediss+sentinel:// or rediss+cluster://")
        values[name] = value
    return values


def _typed(url: str, values: dict[str, str]) -> dict[str, Any]:
    """redis-py's keyword arguments take typed values (its from_url parses strings itself)."""
    typed: dict[str, Any] = {}
    for name, value in values.items():
        if name in _FLOATS or name in _INTS:
            check_number(url, name, value, positive=name in _FLOATS)
            typed[name] = float(value) if name in _FLOATS else int(float(value))
        elif name == "ssl_check_hostname":
            typed[name] = value.lower() in ("1", "true", "yes", "on")
        else:
            typed[name] = value
    return typed


def _db(url: str, segments: list[str]) -> int:
    if len(segments) != 1 or not segments[0].isdigit():
        raise _bad(url, f"database must be one number, got {'/'.join(segments)!r}")
    return int(segments[0])


def _sentinel_options(
    url: str, options: dict[str, Any], values: dict[str, str], transport: dict[str, Any]
) -> dict[str, Any]:
    """Keyword arguments of the connections to the sentinels: the same timeouts and TLS as
    Redis's, their own credentials (Sentinel has no ACL users unless configured)."""
    shared = (
        "socket_timeout",
        "socket_connect_timeout",
        "ssl",
        *(n for n in options if n.startswith("ssl_")),
    )
    sentinel = {name: options[name] for name in shared if name in options}
    if "sentinel_password" in values:
        sentinel["password"] = values["sentinel_password"]
    if "sentinel_username" in values:
        sentinel["username"] = values["sentinel_username"]
    given = transport.get("sentinel_kwargs") or {}
    if not isinstance(given, dict):
        raise _bad(url, f"sentinel_kwargs must be a dict, got {given!r}")
    sentinel.update(given)
    return sentinel


def _bad(url: str, reason: str) -> ConfigurationError:
    from .url import redact

    return ConfigurationError(f"bad Redis URL {redact(url)!r}: {reason}")
