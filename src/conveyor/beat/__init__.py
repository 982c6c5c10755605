"""Periodic scheduler (beat): schedule math lives in ``conveyor.beat.schedules``."""
