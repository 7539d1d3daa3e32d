"""One cycle of a model at a time, across machines: a Prefect global concurrency limit.

The workspace's lock (:mod:`modelcycle.lifecycle.lock`) is an OS file lock: it holds on one
machine, and file locks on network filesystems are not to be trusted. When cycles talk to a
Prefect server that outlives them (a team's, ``modelcycle up``'s: every deployed run), workers
on several machines may start cycles of the same model at once; each cycle then also takes the
one slot of the server's global concurrency limit ``modelcycle-<model>`` (created with limit 1
on first use), after the file lock (always in that order, so two cycles never wait on each
other crosswise).

It is held for **the whole cycle**, not only its act: a cycle chooses its window from the last
cycle's (``next``), scores the champion the previous cycle left, and decides against it; a
cycle that took the slot only to act would have gathered a champion that may no longer be the
champion, and two ``next`` runs could pick the same window. A cycle that escalates keeps the
slot while it waits for a human, as it keeps the file lock.

A crashed holder does not block forever: the slot is a **lease** of :data:`LEASE_SECONDS`,
renewed by a thread of the holding process (at three quarters of its length); when the
process dies, renewals stop and the server's repossessor frees the slot once the lease has
expired (within ``LEASE_SECONDS`` plus its 15 s loop). A waiting cycle on the holder's own
machine does not wait for that: the holder's note names its process and its lease, and a
process that is gone (same host, pid and start time; another host's is never assumed gone)
has its lease released at once. ``slot_decay_per_second`` is not used:
decay frees slots with time whether or not their holder still works (it is for rate limits),
so a long cycle would lose its slot mid-act. ``strict`` acquisition is: a limit that cannot be
found is created, never silently skipped.

Who holds the slot is written to the Prefect variable ``modelcycle_holder_<model>`` (run, host,
worker, since, process, lease), for the message a waiting cycle gives: "waiting for 2015-01 on host-a to finish
the cycle of taxifare". Taking and releasing the slot are Prefect events
(``prefect.concurrency-limit.acquired`` / ``.released``, as Prefect's own ``concurrency()``
emits them): the UI's event feed and the limit's page show them.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, UTC
from typing import Any
from uuid import UUID

log = logging.getLogger(__name__)

#: the slot's lease (the shortest Prefect allows): a dead holder's slot is free again this long, plus the
#: server's 15 s repossessor loop, after it died
LEASE_SECONDS = 60.0
#: how often a waiting cycle asks for the slot again
POLL_SECONDS = 1.0
#: the environment variable naming this machine as modelcycle reports it (default: the hostname)
HOST_ENV = "MODELCYCLE_HOST"
#: the environment variable naming the worker whose process runs this cycle (set by `modelcycle worker`)
WORKER_ENV = "MODELCYCLE_WORKER"

_held: dict[str, int] = {}
_guard = threading.Lock()


def machine() -> str:
    """This machine's name: ``MODELCYCLE_HOST``, else the hostname."""
    return os.environ.get(HOST_ENV) or socket.gethostname()


def worker() -> str | None:
    """The `modelcycle worker` that started this process's run, if one did."""
    return os.environ.get(WORKER_ENV) or None


def _slug(model: str, sep: str) -> str:
    return re.sub(r"[^a-z0-9]+", sep, model.lower()).strip(sep) or "model"


def limit_name(model: str) -> str:
    """The global concurrency limit of ``model``'s cycles: ``modelcycle-<model>``."""
    return f"modelcycle-{_slug(model, '-')}"


def holder_variable(model: str) -> str:
    """The Prefect variable saying who holds ``model``'s slot (variable names take ``_``)."""
    return f"modelcycle_holder_{_slug(model, '_')}"


@dataclass(frozen=True)
class Holding:
    """Who holds a model's slot."""

    run: str
    host: str
    since: str  # ISO 8601, UTC
    worker: str | None = None
    process: str | None = None  # host:pid:start (effects.process_id)
    lease: str | None = None  # the slot's lease id

    def gone(self) -> bool:
        """Whether the holding process is known to be gone (it ran on this machine and is no more)."""
        from modelcycle.lifecycle.effects import process_gone

        return bool(self.process) and process_gone(str(self.process))

    def describe(self) -> str:
        where = self.host + (f" (worker {self.worker})" if self.worker else "")
        return f"{self.run} on {where}"

    def to_json(self) -> dict[str, str]:
        return {"run": self.run, "host": self.host, "since": self.since, "worker": self.worker or "",
                "process": self.process or "", "lease": self.lease or ""}

    @classmethod
    def from_json(cls, data: Any) -> Holding | None:
        try:
            return cls(str(data["run"]), str(data["host"]), str(data["since"]), str(data.get("worker") or "") or None,
                       str(data.get("process") or "") or None, str(data.get("lease") or "") or None)
        except (KeyError, TypeError, AttributeError):
            return None


def waiting_message(model: str, holding: Holding | None) -> str:
    who = holding.describe() if holding else "another cycle"
    return f"waiting for {who} to finish the cycle of {model}"


class Server:
    """The few calls the lock makes to the Prefect server (tests give a fake)."""

    def acquire(self, name: str, holder_id: str | None) -> contextlib.AbstractContextManager[None] | None:
        """The held slot (a context manager that keeps its lease and releases it, its ``lease``
        the lease's id), or None when another holds it. Raises LookupError when the limit does
        not exist."""
        import httpx
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.objects import ConcurrencyLeaseHolder

        holder = ConcurrencyLeaseHolder(type="flow_run", id=UUID(holder_id)) if holder_id else None
        with get_client(sync_client=True) as client:
            try:
                answer = client.increment_concurrency_slots_with_lease(
                    names=[name], slots=1, mode="concurrency", lease_duration=LEASE_SECONDS, holder=holder).json()
            except httpx.HTTPStatusError as exc:
                if exc.response.status_code == 423:  # the slot is taken
                    return None
                raise
            lease = str(answer["lease_id"])
            if not answer.get("limits"):  # no such limit: the lease holds nothing
                client.release_concurrency_slots_with_lease(UUID(lease))
                raise LookupError(name)
        return _Lease(lease, answer["limits"])

    def release(self, lease: str) -> None:
        """Release the slot a lease holds (a lease that is gone already: nothing happens)."""
        import httpx
        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client, contextlib.suppress(httpx.HTTPStatusError):
            client.release_concurrency_slots_with_lease(UUID(lease))

    def create(self, name: str) -> None:
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
        from prefect.exceptions import ObjectAlreadyExists

        with get_client(sync_client=True) as client, contextlib.suppress(ObjectAlreadyExists):
            client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))

    def note(self, variable: str, holding: Holding) -> None:
        from prefect.variables import Variable

        Variable.set(variable, json.dumps(holding.to_json()), overwrite=True)

    def forget(self, variable: str) -> None:
        from prefect.variables import Variable

        Variable.unset(variable)

    def read(self, variable: str) -> Holding | None:
        from prefect.variables import Variable

        text = Variable.get(variable, default=None)
        try:
            return Holding.from_json(json.loads(text)) if isinstance(text, str) else None
        except ValueError:
            return None


def _slot_event(phase: str, limit: dict[str, Any], follows: Any = None) -> Any:
    """``prefect.concurrency-limit.acquired`` / ``.released`` for the model's limit, as Prefect's
    own ``concurrency()`` emits them: the UI's event feed and the limit's page show who took the
    slot and when. An event that cannot be sent never stops the cycle."""
    try:
        from prefect.events import emit_event

        return emit_event(f"prefect.concurrency-limit.{phase}", follows=follows, resource={
            "prefect.resource.id": f"prefect.concurrency-limit.{limit['id']}",
            "prefect.resource.name": str(limit["name"]), "slots-acquired": "1", "limit": str(limit["limit"])})
    except Exception:  # the slot is what counts, its event is for people
        log.debug("could not emit the %s event of the model's slot", phase, exc_info=True)
        return None


class _Lease(contextlib.AbstractContextManager[None]):
    """A held slot: a thread renews its lease at three quarters of its length until the block
    ends, then the lease is released. A renewal that fails is logged (the server may have freed
    the slot: a cycle then says so rather than stopping midway). Taking and releasing the slot
    are Prefect events, as with Prefect's own ``concurrency()``."""

    def __init__(self, lease: str, limits: list[dict[str, Any]]) -> None:
        self.lease = lease
        self._limits = list(limits)
        self._acquired = [_slot_event("acquired", limit) for limit in self._limits]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=contextvars.copy_context().run, args=(self._renew,),
                                        name="modelcycle-slot-lease", daemon=True)  # with Prefect's settings
        self._thread.start()

    def _renew(self) -> None:
        from prefect.client.orchestration import get_client

        while not self._stop.wait(LEASE_SECONDS * 0.75):
            try:
                with get_client(sync_client=True) as client:
                    client.renew_concurrency_lease(UUID(self.lease), LEASE_SECONDS)
            except Exception as exc:  # noqa: BLE001 - a renewal never stops the cycle
                log.warning("could not renew the lease of the model's slot (%s): %s", self.lease, exc)

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        with contextlib.suppress(Exception):  # an unanswered release: the lease expires by itself
            Server().release(self.lease)
        for limit, acquired in zip(self._limits, self._acquired, strict=True):
            _slot_event("released", limit, follows=acquired)


@contextlib.contextmanager
def hold(model: str, run: str, *, say: Callable[[str], None], server: Server | None = None,
         flow_run_id: str | None = None) -> Iterator[None]:
    """Hold ``model``'s slot for the block, waiting for it (and saying so once) while another
    cycle holds it. Re-entrant within a process (a backtest's months, the flow the command line
    started)."""
    name = limit_name(model)
    with _guard:
        depth = _held.get(name, 0)
        if depth:
            _held[name] = depth + 1
    if depth:
        try:
            yield
        finally:
            with _guard:
                _held[name] -= 1
        return
    from modelcycle.lifecycle.effects import process_id

    server = server or Server()
    variable = holder_variable(model)
    said = False
    freed: set[str] = set()
    while True:
        try:
            slot = server.acquire(name, flow_run_id)
        except LookupError:
            server.create(name)
            continue
        if slot is not None:
            break
        holding = server.read(variable)
        if holding is not None and holding.lease and holding.lease not in freed and holding.gone():
            freed.add(holding.lease)
            say(f"{holding.describe()} stopped while it held the cycle of {model}: its slot is free again")
            server.release(holding.lease)
            continue
        if not said:
            say(waiting_message(model, holding))
            said = True
        time.sleep(POLL_SECONDS)
    with slot:
        with _guard:
            _held[name] = 1
        try:
            with contextlib.suppress(Exception):  # the note only feeds a waiting cycle's message
                server.note(variable, Holding(run, machine(), datetime.now(UTC).isoformat(timespec="seconds"),
                                              worker(), process_id(), getattr(slot, "lease", None)))
            yield
        finally:
            with _guard:
                _held.pop(name, None)
            with contextlib.suppress(Exception):  # the slot is still ours: no other note to remove
                server.forget(variable)
