"""The team's servers (:mod:`tests.team.servers`) for the tests of this folder: launched once per
test module, on first use, and stopped at its end (a server idling through the rest of the
suite takes CPU from the other tests). A test calls ``team_servers.ready()``
before its first use of MLflow or Prefect (it may do other work while they start)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.team.servers import TeamServers, UnavailableError


@pytest.fixture(scope="module")
def team_servers() -> Iterator[TeamServers]:
    servers = TeamServers()
    try:
        servers.launch()
    except UnavailableError as exc:
        pytest.skip(str(exc))
    try:
        yield servers
    finally:
        servers.stop()
