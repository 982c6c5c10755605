"""Moved to :mod:`conveyor.beat.schedules.crontab`; this path keeps working."""

from .schedules.crontab import Crontab, crontab

__all__ = ["Crontab", "crontab"]
