"""The migrated databases of the test Django project, made once per pytest worker."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .project import DjangoProject, migrate

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
