"""`modelcycle approve` / `reject` on a run that has just paused: Prefect refuses an answer until
the run has saved its form, so the answer is given again for a few seconds; any other refusal
(the approval timed out) is said at once."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from prefect.client.schemas.responses import SetStateStatus

from modelcycle.errors import WorkspaceError
from modelcycle.lifecycle import approval

RUN = SimpleNamespace(id="0f3c", name="2015-03")


class Client:
    """Prefect's client resuming a paused run: refuses the first ``refusals`` answers."""

    def __init__(self, refusals: list[str]) -> None:
        self.refusals = refusals
        self.answers: list[dict[str, str]] = []

    def resume_flow_run(self, flow_run_id: str, run_input: dict[str, str]) -> SimpleNamespace:
        self.answers.append(run_input)
        if len(self.answers) <= len(self.refusals):
            return SimpleNamespace(status=SetStateStatus.REJECT,
                                   details=SimpleNamespace(reason=self.refusals[len(self.answers) - 1]))
        return SimpleNamespace(status=SetStateStatus.ACCEPT, details=SimpleNamespace())


@pytest.fixture
def serve(monkeypatch: pytest.MonkeyPatch):
    def use(client: Client) -> Client:
        @contextlib.contextmanager
        def opened() -> Iterator[Client]:
            yield client

        monkeypatch.setattr(approval, "find_paused", lambda run: RUN)
        monkeypatch.setattr(approval, "_client", opened)
        return client
    return use


def test_an_answer_before_the_run_saved_its_form_is_given_again(serve) -> None:
    client = serve(Client(["Run input schema not found."] * 2))
    assert approval.answer("2015-03", approve=True, by="ana", comment="ok") is RUN
    assert len(client.answers) == 3
    assert client.answers[-1] == {"decision": approval.APPROVE, "comment": "ok", "by": "ana"}


def test_a_run_that_never_saves_its_form_is_refused_after_the_wait(serve, monkeypatch) -> None:
    monkeypatch.setattr(approval, "FORM_WAIT_SECONDS", 0.5)
    client = serve(Client(["Run input schema not found."] * 1000))
    with pytest.raises(WorkspaceError, match="Run input schema not found") as raised:
        approval.answer("2015-03", approve=False, by="bo")
    assert "has not saved its form within 0.5 s" in raised.value.message
    assert "answer again in a moment" in (raised.value.hint or "")
    assert 1 < len(client.answers) < 10


def test_any_other_refusal_is_said_at_once(serve) -> None:
    client = serve(Client(["Cannot resume a flow run that is not paused."]))
    with pytest.raises(WorkspaceError, match="Prefect refused the answer for run '2015-03'") as raised:
        approval.answer("2015-03", approve=True, by="ana")
    assert "timed out" in (raised.value.hint or "")
    assert len(client.answers) == 1
