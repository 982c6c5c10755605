"""``python manage.py conveyor_import_beat``: django_celery_beat's periodic tasks into Conveyor.

    python manage.py conveyor_import_beat --dry-run     # what would be imported
    python manage.py conveyor_import_beat               # import (again: updates the entries)

See ``conveyor.contrib.django.beat_import`` for how each row is translated.
"""

from __future__ import annotations

import importlib
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from .....app import Conveyor
from .....registry import current_app
from ...beat_import import import_periodic_tasks


class Command(BaseCommand):  # type: ignore[misc]  # Django ships no type information
    help = "Import django_celery_beat's periodic tasks (interval and crontab) into Conveyor's schedules."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--app",
            help="The Conveyor app as module:attribute (default: the app the project created, "
            "e.g. in proj/__init__.py)",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Show what would be imported; change nothing."
        )
        parser.add_argument(
            "--no-check-tasks",
            action="store_true",
            help="Import rows whose task this project does not register (another service runs them).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        from django.apps import apps

        if not apps.is_installed("django_celery_beat"):
            raise CommandError(
                "django_celery_beat is not in INSTALLED_APPS: there are no periodic tasks to import"
            )
        app = _app(options["app"])
        report = import_periodic_tasks(
            app, dry_run=options["dry_run"], check_tasks=not options["no_check_tasks"]
        )
        for line in report.lines:
            self.stdout.write(line)
        verb = "would import" if options["dry_run"] else "imported"
        self.stdout.write(
            f"{verb} {len(report.imported)} entr{'y' if len(report.imported) == 1 else 'ies'}, "
            f"{len(report.one_off)} one-off, skipped {len(report.skipped)}, failed {len(report.failed)}"
        )
        if report.failed:
            raise CommandError(
                f"{len(report.failed)} periodic task(s) not imported: {', '.join(report.failed)}"
            )


def _app(spec: str | None) -> Conveyor:
    if not spec:
        return current_app()
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise CommandError(f"cannot import {module_name!r}: {exc}") from exc
    app = getattr(module, attr or "app", None)
    if not isinstance(app, Conveyor):
        raise CommandError(f"{spec} is not a Conveyor app")
    return app
