"""The Redis broker over TLS (``rediss://``) against a real redis-server with TLS on, with a
throwaway CA and certificates made by the openssl CLI for each test run: the CA option verifies
the server, a missing CA or a wrong host is refused, ``ssl_cert_reqs=none`` skips the check,
a client certificate is sent where the server asks for one, and a worker process runs tasks
over TLS."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from conveyor import Conveyor, states
from conveyor.brokers import JobSpec, Outcome, broker_from_url
from conveyor.exceptions import BrokerError

from ..apps import basic
from ..procs import WorkerProcess, wait_for
from ..redis_server import RedisServer, free_port

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_certificates(where: Path) -> Path:
    """ca.pem/ca.key, server.pem/server.key (for 127.0.0.1 only), client.pem/client.key,
    all signed by the throwaway CA."""
    where.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=conveyor test CA",
             "-keyout", "ca.key", "-out", "ca.pem", cwd=where)  # fmt: skip
    (where / "server.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    for name, subject in (("server", "/CN=127.0.0.1"), ("client", "/CN=conveyor-client")):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", subject, "-keyout", f"{name}.key",
                 "-out", f"{name}.csr", cwd=where)  # fmt: skip
        extra = ["-extfile", "server.ext"] if name == "server" else []
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                 "-days", "2", "-out", f"{name}.pem", *extra, cwd=where)  # fmt: skip
    return where


class TLSRedis:
    """A redis-server with a plain port (for readiness checks only) and a TLS port."""

    def __init__(self, certs: Path, clients_need_certificates: bool) -> None:
        self.tls_port = free_port()
        extra = ["--tls-port", str(self.tls_port), "--tls-cert-file", str(certs / "server.pem")]
        extra += ["--tls-key-file", str(certs / "server.key"), "--tls-ca-cert-file", str(certs / "ca.pem")]
        extra += ["--tls-auth-clients", "yes" if clients_need_certificates else "no"]
        self.server = RedisServer(extra=extra).start()
        self.certs = certs

    def url(self, query: str = "", host: str = "127.0.0.1") -> str:
        return f"rediss://{host}:{self.tls_port}/0" + (f"?{query}" if query else "")


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_certificates(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def tls_redis(certs: Path) -> Iterator[TLSRedis]:
    server = TLSRedis(certs, clients_need_certificates=False)
    try:
        yield server
    finally:
        server.server.cleanup()


def _round_trip(url: str, job_id: str) -> None:
    broker = broker_from_url(url)
    try:
        assert broker.enqueue([JobSpec(job_id, "q", b'{"id":"x","task":"t"}')]) == [True]
        d = broker.fetch(["q"], "w1", 1, 30, 0)[0]
        broker.settle([Outcome("ack", job_id, d.delivery, states.SUCCESS, b'{"result":1}')], 60)
        status = broker.status(job_id)
        assert status is not None and status.state == states.SUCCESS
    finally:
        broker.close()


def test_rediss_with_the_ca_verifies_the_server_and_runs_the_job_lifecycle(tls_redis: TLSRedis) -> None:
    ca = tls_redis.certs / "ca.pem"
    _round_trip(tls_redis.url(f"prefix=tls1&ssl_cert_reqs=required&ssl_ca_certs={ca}"), "a")


def test_rediss_without_the_servers_ca_is_refused_naming_the_certificate(tls_redis: TLSRedis) -> None:
    broker = broker_from_url(tls_redis.url("prefix=tls2&ssl_cert_reqs=required"))
    try:
        with pytest.raises(BrokerError, match=r"(?i)certificate verify failed"):
            broker.enqueue([JobSpec("b", "q", b"{}")])
    finally:
        broker.close()


def test_rediss_to_a_host_name_the_certificate_does_not_name_is_refused(
    tls_redis: TLSRedis, certs: Path
) -> None:
    # The certificate names 127.0.0.1 only; "localhost" is the same server under a name the
    # certificate does not vouch for.
    ca = certs / "ca.pem"
    url = tls_redis.url(f"prefix=tls3&ssl_ca_certs={ca}&ssl_check_hostname=true", host="localhost")
    broker = broker_from_url(url)
    try:
        with pytest.raises(BrokerError, match=r"(?i)(hostname|ip address) mismatch|doesn't match"):
            broker.enqueue([JobSpec("c", "q", b"{}")])
    finally:
        broker.close()


def test_ssl_cert_reqs_none_skips_the_check(tls_redis: TLSRedis) -> None:
    _round_trip(tls_redis.url("prefix=tls4&ssl_cert_reqs=none"), "d")


def test_plain_redis_to_a_tls_port_is_a_broker_error_not_a_hang(tls_redis: TLSRedis) -> None:
    broker = broker_from_url(f"redis://127.0.0.1:{tls_redis.tls_port}/0?prefix=tls5&socket_timeout=3")
    try:
        with pytest.raises(BrokerError, match=f"127.0.0.1:{tls_redis.tls_port}"):
            broker.enqueue([JobSpec("e", "q", b"{}")])
    finally:
        broker.close()


def test_a_server_that_asks_for_a_client_certificate_gets_ssl_certfile_and_keyfile(certs: Path) -> None:
    server = TLSRedis(certs, clients_need_certificates=True)
    try:
        ca = certs / "ca.pem"
        without = broker_from_url(server.url(f"prefix=tls6&ssl_ca_certs={ca}"))
        try:
            with pytest.raises(BrokerError):
                without.enqueue([JobSpec("f", "q", b"{}")])
        finally:
            without.close()
        client = f"ssl_certfile={certs / 'client.pem'}&ssl_keyfile={certs / 'client.key'}"
        query = f"prefix=tls6&ssl_ca_certs={ca}&{client}"
        _round_trip(server.url(query), "g")
    finally:
        server.server.cleanup()


def test_a_worker_process_runs_tasks_over_tls(tls_redis: TLSRedis, tmp_path: Path) -> None:
    url = tls_redis.url(f"prefix=tls7&ssl_cert_reqs=required&ssl_ca_certs={tls_redis.certs / 'ca.pem'}")
    basic.app.conf.broker_url = url
    app: Conveyor = basic.app
    worker = WorkerProcess(url, tmp_path, "-c", "2")
    try:
        worker.wait_ready()
        results = [basic.add.delay(i, 1) for i in range(10)]
        assert [r.get(timeout=30) for r in results] == [i + 1 for i in range(10)]
    finally:
        worker.stop()
        app.close()


class TLSSentinel:
    """One sentinel speaking TLS (to clients and to the primary it watches)."""

    def __init__(self, certs: Path, primary_tls_port: int) -> None:
        self.port, self.tls_port = free_port(), free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="conveyor-tls-sentinel-"))
        conf = self.dir / "sentinel.conf"
        conf.write_text(
            f"port {self.port}\ntls-port {self.tls_port}\nbind 127.0.0.1\ndir {self.dir}\n"
            f"tls-cert-file {certs / 'server.pem'}\ntls-key-file {certs / 'server.key'}\n"
            f"tls-ca-cert-file {certs / 'ca.pem'}\ntls-auth-clients no\ntls-replication yes\n"
            f"sentinel monitor mymaster 127.0.0.1 {primary_tls_port} 1\n"
        )
        binary = shutil.which("redis-server") or "redis-server"
        self.proc = subprocess.Popen([binary, str(conf), "--sentinel"], stdout=subprocess.DEVNULL)
        wait_for(lambda: _answers_ping(self.port), 10)

    def cleanup(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)


def _answers_ping(port: int) -> bool:
    client = redis.Redis(port=port, socket_timeout=1)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def test_rediss_sentinel_speaks_tls_to_the_sentinels_and_to_the_primary(
    tls_redis: TLSRedis, certs: Path
) -> None:
    sentinel = TLSSentinel(certs, tls_redis.tls_port)
    try:
        hosts = f"127.0.0.1:{sentinel.tls_port}"
        _round_trip(f"rediss+sentinel://{hosts}/mymaster/0?prefix=tls8&ssl_ca_certs={certs / 'ca.pem'}", "h")
        refused = broker_from_url(f"rediss+sentinel://{hosts}/mymaster/0?prefix=tls8&ssl_cert_reqs=required")
        try:
            with pytest.raises(BrokerError):  # no CA: neither sentinel nor primary is trusted
                refused.enqueue([JobSpec("i", "q", b"{}")])
        finally:
            refused.close()
    finally:
        sentinel.cleanup()
