"""The in-process broker (``memory://``), for tests. See broker.py."""

from __future__ import annotations

from .broker import MemoryBroker

__all__ = ["MemoryBroker"]
