"""Moved to :mod:`conveyor.execution.outcomes` (below coordination, which builds outcomes too)."""

from ..execution.outcomes import dead, failure, internal_error, retry, revoked, success

__all__ = ["dead", "failure", "internal_error", "retry", "revoked", "success"]
