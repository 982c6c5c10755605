"""The Redis broker on Sentinel and Cluster topologies (tests/redis_ha.py: real redis-server
processes, real sentinels, a real three-primary cluster; never port 6379).

The whole broker contract (test_contract.py) runs here again against each topology: its tests
are imported into this module, whose ``broker_url`` fixture names a topology instead of a
broker kind. Each test gets its own key prefix, so no flush is needed between tests.
"""

from __future__ import annotations

import uuid

import pytest

from .test_contract import *  # noqa: F403  (collected again here, against Sentinel and Cluster)


@pytest.fixture(params=["sentinel", "cluster"])
def broker_url(request: pytest.FixtureRequest) -> str:
    prefix = f"prefix=t{uuid.uuid4().hex[:10]}"
    if request.param == "sentinel":
        return str(request.getfixturevalue("sentinel_topology").url(prefix))
    return str(request.getfixturevalue("cluster_topology").url(prefix))
