"""Chain, group and chord: signatures made of signatures (Celery's names and forms).

- ``chain(a.s(1), b.s(), c.s())`` or ``a.s(1) | b.s() | c.s()``: each step gets the previous
  step's result as its first argument; a failure stops the chain.
- ``group(sigs)``: the tasks run in parallel; ``GroupResult`` has their results in order.
- ``chord(header)(body)``: ``body`` runs once, after every header task succeeded, with their
  results in order as its first argument.

They are ``Signature`` dicts too (``subtask_type`` "chain", "group", "chord", their parts in
``kwargs``), so a workflow is JSON like a single task.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .signature import Signature, maybe_signature, signatures

if TYPE_CHECKING:
    from ..app import Conveyor
    from ..results import AsyncResult, GroupResult


class Chain(Signature):
    """Steps run one after another; see ``chain``."""

    subtask_kind = "chain"

    def __init__(
        self, tasks: Iterable[Any], options: Mapping[str, Any] | None = None, app: Conveyor | None = None
    ):
        steps: list[Signature] = []
        for step in signatures(tasks, app):
            # A chain of chains is one chain.
            steps.extend(step.tasks if isinstance(step, Chain) else [step])
        if not steps:
            raise ValueError("a chain needs at least one step")
        super().__init__("conveyor.chain", (), {"tasks": [dict(s) for s in steps]}, options, app=app)

    @classmethod
    def from_parts(cls, data: Mapping[str, Any], app: Conveyor | None) -> Chain:
        return cls(data.get("kwargs", {}).get("tasks", ()), data.get("options"), app)

    @property
    def tasks(self) -> list[Signature]:
        return signatures(self.kwargs["tasks"], self._app)

    def __or__(self, other: Signature) -> Chain:  # type: ignore[override]
        if not isinstance(other, Signature):
            return NotImplemented
        return Chain([*self.tasks, other], self.options, self._app)

    def __call__(self, *args: Any, **kwargs: Any) -> AsyncResult[Any] | GroupResult:
        """Start the chain (Celery: calling a chain applies it asynchronously)."""
        return self.apply_async(args, kwargs)

    def __repr__(self) -> str:
        return " | ".join(repr(s) for s in self.tasks)


class Group(Signature):
    """Tasks run in parallel; see ``group``."""

    subtask_kind = "group"

    def __init__(
        self, tasks: Iterable[Any], options: Mapping[str, Any] | None = None, app: Conveyor | None = None
    ):
        members = [dict(s) for s in signatures(tasks, app)]
        super().__init__("conveyor.group", (), {"tasks": members}, options, app=app)

    @classmethod
    def from_parts(cls, data: Mapping[str, Any], app: Conveyor | None) -> Group:
        return cls(data.get("kwargs", {}).get("tasks", ()), data.get("options"), app)

    @property
    def tasks(self) -> list[Signature]:
        return signatures(self.kwargs["tasks"], self._app)

    def __len__(self) -> int:  # a group's length is its size, as in Celery
        return len(self.kwargs["tasks"])

    def __or__(self, other: Signature) -> Signature:  # type: ignore[override]
        """``group(...) | body`` is a chord, as in Celery."""
        if not isinstance(other, Signature):
            return NotImplemented
        return Chord(self.tasks, other, self.options, self._app)

    def __call__(self, *args: Any, **kwargs: Any) -> AsyncResult[Any] | GroupResult:
        return self.apply_async(args, kwargs)

    def __repr__(self) -> str:
        return f"group([{', '.join(repr(s) for s in self.tasks)}])"


class Chord(Signature):
    """A group whose completion runs a body; see ``chord``."""

    subtask_kind = "chord"

    def __init__(
        self,
        header: Iterable[Any],
        body: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
        app: Conveyor | None = None,
    ):
        if isinstance(header, Group):
            header = header.tasks
        parts = {
            "header": [dict(s) for s in signatures(header, app)],
            "body": None if body is None else dict(maybe_signature(body, app)),
        }
        super().__init__("conveyor.chord", (), parts, options, app=app)

    @classmethod
    def from_parts(cls, data: Mapping[str, Any], app: Conveyor | None) -> Chord:
        kwargs = data.get("kwargs", {})
        return cls(kwargs.get("header", ()), kwargs.get("body"), data.get("options"), app)

    @property
    def tasks(self) -> list[Signature]:
        return signatures(self.kwargs["header"], self._app)

    header = tasks

    @property
    def body(self) -> Signature | None:
        body = self.kwargs["body"]
        return None if body is None else maybe_signature(body, self._app)

    def __call__(
        self, body: Mapping[str, Any] | None = None, **options: Any
    ) -> AsyncResult[Any] | GroupResult:
        """``chord(header)(body)``: start the chord with this body."""
        if body is not None:
            return Chord(self.tasks, body, self.options, self._app).apply_async((), {}, **options)
        return self.apply_async((), {}, **options)

    def __repr__(self) -> str:
        return f"chord([{', '.join(repr(s) for s in self.tasks)}], {self.body!r})"


KINDS: dict[str, Any] = {"chain": Chain, "group": Group, "chord": Chord}


def chain(*tasks: Any, app: Conveyor | None = None, **options: Any) -> Chain:
    """``chain(a.s(1), b.s(), c.s())``: ``a(1)``, then ``b(<a's result>)``, then ``c(<b's>)``.
    Also ``chain([a.s(1), b.s()])``. Applying it returns the last step's ``AsyncResult``
    (``.parent`` leads back through the earlier steps)."""
    if len(tasks) == 1 and not isinstance(tasks[0], Mapping):
        tasks = tuple(tasks[0])
    return Chain(tasks, options, app)


def group(*tasks: Any, app: Conveyor | None = None, **options: Any) -> Group:
    """``group(refresh.s(i) for i in ids)`` or ``group(a.s(), b.s())``: run them in parallel;
    applying it returns a ``GroupResult``."""
    if len(tasks) == 1 and not isinstance(tasks[0], Mapping):
        tasks = tuple(tasks[0])
    return Group(tasks, options, app)


def chord(
    header: Iterable[Any] | Sequence[Any],
    body: Mapping[str, Any] | None = None,
    app: Conveyor | None = None,
    **options: Any,
) -> Chord:
    """``chord(header)(body)`` or ``chord(header, body)()``: run ``body`` once, after every
    header task succeeded, with their results (in the header's order) as its first argument.
    Applying it returns the body's ``AsyncResult`` (``.parent`` is the header's
    ``GroupResult``); if a header task fails the body does not run, its ``link_error``
    callbacks run once, and its result is a ``ChordError`` naming the failed task."""
    return Chord(header, body, options, app)
