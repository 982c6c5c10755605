"""The worker: fetches leased jobs, runs tasks, settles outcomes, heartbeats its leases."""

from .worker import Worker

__all__ = ["Worker"]
