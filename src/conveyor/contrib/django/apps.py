"""The Django app config of ``conveyor.contrib.django`` (for its management command)."""

from __future__ import annotations

from django.apps import AppConfig


class ConveyorConfig(AppConfig):  # type: ignore[misc]  # Django ships no type information
    name = "conveyor.contrib.django"
    label = "conveyor"
    verbose_name = "Conveyor"
