"""The migrated databases of the test Django project, made once per pytest worker."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from . import postgres
from .project import DjangoProject, manage, migrate

pytest.importorskip("django")
pytest.importorskip("django_celery_beat")


@pytest.fixture(scope="session")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = tmp_path_factory.mktemp("django-template")
    migrate(workdir)
    return workdir


@pytest.fixture
def project(tmp_path: Path, template_db: Path) -> Iterator[DjangoProject]:
    yield DjangoProject(tmp_path, template_db)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[postgres.PostgresServer]:
    why = postgres.unavailable()
    if why is not None:
        pytest.skip(why)
    server = postgres.PostgresServer().start()
    yield server
    server.close()


@pytest.fixture
def pg_project(tmp_path: Path, template_db: Path, postgres_server: postgres.PostgresServer) -> DjangoProject:
    """The project with its default database on PostgreSQL (a database of its own)."""
    database = f"proj_{uuid.uuid4().hex[:12]}"
    postgres_server.create_database(database)
    project = DjangoProject(tmp_path, template_db)
    project.env.update(PROJ_PG_PORT=str(postgres_server.port), PROJ_PG_DB=database)
    done = manage(tmp_path, "migrate", "-v", "0", env=project.env)
    assert done.returncode == 0, done.stderr
    return project
