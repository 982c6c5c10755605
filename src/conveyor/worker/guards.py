"""Moved to :mod:`conveyor.execution.guards` (below coordination, which implements a guard)."""

from ..execution.guards import RunGuard

__all__ = ["RunGuard"]
