"""Sentinel and Cluster broker URLs (brokers/redis/ha_url.py): every accepted form parses to
what it says, and every bad one is a one-line ``ConfigurationError`` without the password."""

from __future__ import annotations

import pytest

from conveyor import Conveyor
from conveyor.brokers import broker_from_url, redacted_url
from conveyor.brokers.redis.url import parse_redis_url
from conveyor.exceptions import ConfigurationError


def test_celery_sentinel_form_takes_the_master_name_from_transport_options() -> None:
    url = parse_redis_url(
        "sentinel://:redispw@s1:26379/3;sentinel://s2:26380;sentinel://s3",
        {"master_name": "mymaster", "sentinel_kwargs": {"password": "sentinelpw"}},
    )
    assert url.topology == "sentinel"
    assert url.nodes == (("s1", 26379), ("s2", 26380), ("s3", 26379))
    assert url.master_name == "mymaster"
    assert url.options["password"] == "redispw" and url.options["db"] == 3
    assert url.sentinel_options["password"] == "sentinelpw"
    assert "redispw" not in url.where and "mymaster" in url.where


def test_single_url_sentinel_form_carries_master_db_and_both_passwords() -> None:
    url = parse_redis_url(
        "redis+sentinel://app:redispw@s1:26379,s2:26380/mymaster/2"
        "?sentinel_password=sentinelpw&prefix=shop&socket_timeout=4"
    )
    assert (url.topology, url.master_name, url.prefix) == ("sentinel", "mymaster", "shop")
    assert url.nodes == (("s1", 26379), ("s2", 26380))
    assert url.options["username"] == "app" and url.options["password"] == "redispw"
    assert url.options["db"] == 2 and url.options["socket_timeout"] == 4.0
    assert url.sentinel_options["password"] == "sentinelpw"
    assert url.sentinel_options["socket_timeout"] == 4.0  # the same timeouts as Redis's


def test_rediss_sentinel_uses_tls_to_redis_and_to_the_sentinels() -> None:
    url = parse_redis_url("rediss+sentinel://s1/mymaster?ssl_cert_reqs=none&ssl_check_hostname=false")
    assert url.options["ssl"] is True and url.options["ssl_check_hostname"] is False
    assert url.sentinel_options["ssl"] is True and url.sentinel_options["ssl_cert_reqs"] == "none"
    assert "db" not in url.options  # the server's default, 0


def test_cluster_forms_list_their_seed_nodes() -> None:
    url = parse_redis_url("redis+cluster://:pw@h1:7000,h2:7001,[::1]:7002/?prefix=app2")
    assert (url.topology, url.prefix) == ("cluster", "app2")
    assert url.nodes == (("h1", 7000), ("h2", 7001), ("::1", 7002))
    assert url.options["password"] == "pw" and "db" not in url.options
    assert parse_redis_url("rediss+cluster://h1").options["ssl"] is True
    assert parse_redis_url("redis+cluster://h1:7000/0").nodes == (("h1", 7000),)


def test_wait_replicas_from_the_url_or_transport_options_which_win() -> None:
    assert parse_redis_url("redis://h/0").wait_replicas == 0
    url = parse_redis_url("redis://h/0?wait_replicas=1&wait_timeout_ms=250")
    assert (url.wait_replicas, url.wait_timeout_ms) == (1, 250)
    url = parse_redis_url("redis+sentinel://s/m?wait_replicas=1", {"wait_replicas": 2})
    assert url.wait_replicas == 2


@pytest.mark.parametrize(
    ("url", "transport", "reason"),
    [
        ("sentinel://s1:26379", {}, "no master name"),
        ("redis+sentinel://s1:26379", {}, "no master name"),
        ("redis+sentinel://s1:26379/m/zero", {}, "database must be one number"),
        ("redis+sentinel://s1:notaport/m", {}, "bad port"),
        ("redis+sentinel:///m", {}, "no hosts"),
        ("sentinel://s1;redis://s2", {"master_name": "m"}, "must be sentinel://"),
        ("sentinel://s1,s2", {"master_name": "m"}, "one host per sentinel://"),
        ("redis+sentinel://s1/m?sentinel_pasword=x", {}, "unknown option 'sentinel_pasword'"),
        ("redis+sentinel://s1/m?ssl_ca_certs=/ca.pem", {}, "needs rediss\\+sentinel://"),
        ("redis+sentinel://s1/m?prefix={x}", {}, "prefix must be"),
        ("redis+sentinel://s1/m", {"sentinel_kwargs": "pw"}, "sentinel_kwargs must be a dict"),
        ("redis+cluster://h1:7000/1", {}, "only database 0"),
        ("redis+cluster://h1:7000/?master_name=m", {}, "not Cluster"),
        ("redis+cluster://h1:7000/", {"master_name": "m"}, "not Cluster"),
        ("redis://h/0", {"master_name": "m"}, "need a sentinel:// URL"),
        ("redis://h/0?wait_replicas=some", {}, "wait_replicas must be a whole number"),
        ("redis://h/0", {"wait_timeout_ms": 0}, "wait_timeout_ms must be a whole number >= 1"),
        ("cluster://h1:7000", {}, "unsupported broker URL"),
    ],
)
def test_a_bad_sentinel_or_cluster_url_is_one_line_without_the_password(
    url: str, transport: dict[str, object], reason: str
) -> None:
    secret_url = url.replace("://", "://:s3cret@", 1)
    with pytest.raises(ConfigurationError, match=reason) as info:
        broker_from_url(secret_url, transport)
    assert "\n" not in str(info.value) and "s3cret" not in str(info.value)


def test_wait_replicas_with_a_cluster_is_taken_from_the_url_and_the_transport_options() -> None:
    # (Honoured per shard: tests/brokers/test_redis_cluster_wait.py.) No server is reached here.
    broker = broker_from_url("redis+cluster://127.0.0.1:1/?wait_replicas=1&wait_timeout_ms=300")
    other = broker_from_url("redis+cluster://127.0.0.1:1/", {"wait_replicas": 2})
    try:
        assert (broker._conn.wait_replicas, broker._conn.wait_timeout_ms) == (1, 300)  # type: ignore[attr-defined]
        assert other._conn.wait_replicas == 2  # type: ignore[attr-defined]
    finally:
        broker.close()
        other.close()


def test_redis_transport_options_are_refused_by_other_brokers() -> None:
    with pytest.raises(ConfigurationError, match="Redis broker only"):
        broker_from_url("memory://x", {"wait_replicas": 1})


def test_banners_never_show_redis_or_sentinel_passwords() -> None:
    shown = redacted_url("sentinel://:a1@s1;sentinel://:b2@s2/0?sentinel_password=c3&password=d4")
    assert not any(secret in shown for secret in ("a1", "b2", "c3", "d4")), shown
    assert "s1" in shown and "s2" in shown


def test_the_app_hands_broker_transport_options_to_the_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVEYOR_BROKER_URL", "sentinel://127.0.0.1:1;sentinel://127.0.0.1:2")
    app = Conveyor("ha", broker_transport_options={"master_name": "mymaster", "wait_replicas": 1})
    try:
        conn = app.broker._conn  # type: ignore[attr-defined]
        assert conn.wait_replicas == 1 and "mymaster via sentinels 127.0.0.1:1" in conn.where
    finally:
        app.close()
