"""The Redis broker (``redis://``, ``rediss://``, ``unix://``). See broker.py and docs/redis.md."""

from __future__ import annotations

from .broker import RedisBroker

__all__ = ["RedisBroker"]
