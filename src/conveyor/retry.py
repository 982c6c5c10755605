"""Retry delays: Celery's exponential backoff with full jitter.

With ``retry_backoff=True`` the n-th retry waits up to ``factor * 2**n`` seconds, capped at
``retry_backoff_max``; with ``retry_jitter`` (the default) the wait is drawn uniformly from
``[0, that]`` so a burst of failures does not come back as a synchronised burst of retries.
"""

from __future__ import annotations

import random


def backoff_delay(
    retries: int, factor: float, maximum: float, jitter: bool, rng: random.Random | None = None
) -> float:
    """Seconds to wait before retry number ``retries + 1``.

    >>> backoff_delay(3, 1.0, 600.0, jitter=False)
    8.0
    """
    ceiling = min(maximum, factor * (2.0 ** min(retries, 62)))
    if jitter:
        return (rng or random).uniform(0.0, ceiling)
    return max(0.0, ceiling)
