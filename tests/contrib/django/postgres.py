"""A throwaway PostgreSQL server for the Django tests, where PostgreSQL is installed.

Free port, a data directory in /tmp, no fsync; ``restart()`` keeps both, as a database restart
in production does. Run as the ``postgres`` user when the tests run as root (PostgreSQL refuses
root). Tests using it are skipped where the server binaries or psycopg are missing.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from tests.redis_server import free_port

BIN_DIRS = ["/usr/lib/postgresql/17/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/15/bin"]


def find_binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for directory in BIN_DIRS:
        if os.path.exists(os.path.join(directory, name)):
            return os.path.join(directory, name)
    return None


def unavailable() -> str | None:
    """Why a PostgreSQL server cannot be run here, or None."""
    if find_binary("postgres") is None or find_binary("initdb") is None:
        return "PostgreSQL is not installed"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no postgres user to run the server as"
    return None


class PostgresServer:
    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="conveyor-pg-"))
        self.data = self.dir / "data"
        self.proc: subprocess.Popen[bytes] | None = None
        self._user: str | None = None
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            user = pwd.getpwnam("postgres")
            os.chown(self.dir, user.pw_uid, user.pw_gid)
            self._user = "postgres"

    def start(self) -> PostgresServer:
        if not self.data.exists():
            initdb = [
                find_binary("initdb") or "initdb",
                "-D",
                str(self.data),
                "-A",
                "trust",
                "-U",
                "conveyor",
            ]
            initdb += ["-E", "UTF8"]
            subprocess.run(
                [*initdb, "--no-sync"], check=True, capture_output=True, user=self._user, group=self._user
            )
        log = open(self.dir / "server.log", "ab")  # noqa: SIM115 - the server's, for its lifetime
        self.proc = subprocess.Popen(
            [
                find_binary("postgres") or "postgres",
                "-D",
                str(self.data),
                "-p",
                str(self.port),
                "-k",
                str(self.dir),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            user=self._user,
            group=self._user,
        )
        self._wait_ready()
        return self

    def _wait_ready(self, timeout: float = 30.0) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(self.dsn("postgres"), connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline or (self.proc is not None and self.proc.poll() is not None):
                    raise
                time.sleep(0.1)

    def dsn(self, database: str) -> str:
        return f"host=127.0.0.1 port={self.port} user=conveyor dbname={database}"

    def create_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            # SIGINT is PostgreSQL's fast shutdown: sessions are cut, as in a database restart.
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        with contextlib.suppress(OSError):
            shutil.rmtree(self.dir)
