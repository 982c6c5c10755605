"""Signatures: one task call as data, Celery's ``Signature`` (a ``dict``, so it is JSON as is:
it can be an argument, a beat entry, or sent from the CLI or an HTTP API).

    {"task": "proj.add", "args": [2], "kwargs": {}, "options": {"queue": "math"},
     "subtask_type": null, "immutable": false}

``subtask_type`` is None for a task, or ``"chain"``, ``"group"``, ``"chord"`` for the
workflows below (``Chain``, ``Group``, ``Chord``; Celery's ``chain()``, ``group()``,
``chord()``), which keep their parts in ``kwargs``:

- ``chain(a.s(1), b.s(), c.s())`` or ``a.s(1) | b.s() | c.s()``: each step gets the previous
  step's result as its first argument; a failure stops the chain.
- ``group(sigs)``: the tasks run in parallel; ``GroupResult`` has their results in order.
- ``chord(header)(body)``: ``body`` runs once, after every header task succeeded, with their
  results in order as its first argument.

Running them is in run.py (enqueue) and eager.py (here and now); both take these as plain
mappings, so this module is the only one that builds them. ``options`` are the enqueue
options of ``apply_async`` (queue, countdown, priority, task_id, ...) plus ``link`` and
``link_error``: callbacks, as signatures.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..options import MESSAGE_OPTIONS, check_options
from .jobs import CALLBACK_OPTIONS

if TYPE_CHECKING:
    from ..app import Conveyor
    from ..results import AsyncResult, EagerResult, GroupResult

SIGNATURE_OPTIONS = MESSAGE_OPTIONS | CALLBACK_OPTIONS


class Signature(dict[str, Any]):
    """A task call as data: ``add.s(2)``, ``add.si(2, 2)``, ``signature("proj.add", args=(2,))``.

    Arguments given when it runs (a chain step's previous result, a chord's results) come
    before its own (*partial* arguments, as in Celery), unless it is immutable (``si``).

    >>> sig = add.s(2).set(queue="math")                       # doctest: +SKIP
    >>> sig.delay(3)          # runs add(3, 2) on queue "math"   # doctest: +SKIP
    """

    subtask_kind: str | None = None

    def __init__(
        self,
        task: str,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
        immutable: bool = False,
        app: Conveyor | None = None,
    ) -> None:
        if not isinstance(task, str) or not task:
            raise TypeError(f"a signature needs a task name, got {task!r}")
        options = dict(options or {})
        check_options(options, SIGNATURE_OPTIONS, "signature")
        for key in CALLBACK_OPTIONS:
            if key in options:
                options[key] = [dict(maybe_signature(s)) for s in _as_list(options[key])]
        super().__init__(
            task=task,
            args=list(args or ()),
            kwargs=dict(kwargs or {}),
            options=options,
            subtask_type=self.subtask_kind,
            immutable=bool(immutable),
        )
        self._app = app

    # -- the fields, by Celery's names -----------------------------------------------------------
    @property
    def task(self) -> str:
        return str(self["task"])

    name = task

    @property
    def args(self) -> list[Any]:
        return self["args"]  # type: ignore[no-any-return]

    @property
    def kwargs(self) -> dict[str, Any]:
        return self["kwargs"]  # type: ignore[no-any-return]

    @property
    def options(self) -> dict[str, Any]:
        return self["options"]  # type: ignore[no-any-return]

    @property
    def immutable(self) -> bool:
        return bool(self["immutable"])

    @property
    def subtask_type(self) -> str | None:
        return self["subtask_type"]  # type: ignore[no-any-return]

    @property
    def id(self) -> str | None:
        """The task id it will run under, once set (``set(task_id=...)`` or ``freeze()``)."""
        return self.options.get("task_id")

    @property
    def app(self) -> Conveyor:
        if self._app is not None:
            return self._app
        from ..registry import current_app

        return current_app()

    # -- building ----------------------------------------------------------------------------
    def set(self, **options: Any) -> Signature:
        """Set enqueue options (``queue``, ``countdown``, ``priority``, ...) in place; returns it."""
        check_options(options, SIGNATURE_OPTIONS, "set")
        for key in CALLBACK_OPTIONS & options.keys():
            options[key] = [dict(maybe_signature(s)) for s in _as_list(options[key])]
        self.options.update(options)
        return self

    def set_immutable(self, immutable: bool) -> Signature:
        self["immutable"] = bool(immutable)
        return self

    def clone(
        self, args: Sequence[Any] | None = None, kwargs: Mapping[str, Any] | None = None, **options: Any
    ) -> Signature:
        """A copy with ``args`` put before its own (unless immutable), ``kwargs`` and ``options``
        merged in."""
        copy = from_dict(_deep_copy(self), self._app)
        if not self.immutable:
            copy["args"] = [*(args or ()), *copy.args]
            copy.kwargs.update(kwargs or {})
        if options:
            copy.set(**options)
        return copy

    def link(self, callback: Mapping[str, Any]) -> Signature:
        """Run ``callback`` with this task's result when it succeeds; returns the callback."""
        sig = maybe_signature(callback, self._app)
        self.options.setdefault("link", []).append(dict(sig))
        return sig

    def link_error(self, errback: Mapping[str, Any]) -> Signature:
        """Run ``errback`` with this task's id when it fails for good; returns the errback."""
        sig = maybe_signature(errback, self._app)
        self.options.setdefault("link_error", []).append(dict(sig))
        return sig

    on_error = link_error

    def freeze(self) -> str:
        """Fix the task id it will run under (set if not yet) and return it."""
        from ..message import new_task_id

        return self.options.setdefault("task_id", new_task_id())  # type: ignore[no-any-return]

    def __or__(self, other: Signature) -> Chain:  # type: ignore[override]
        if not isinstance(other, Signature):
            return NotImplemented
        return Chain([self, other], app=self._app)

    # -- running -----------------------------------------------------------------------------
    def delay(self, *args: Any, **kwargs: Any) -> AsyncResult[Any] | GroupResult:
        """Enqueue it with these partial arguments: ``add.s(2).delay(3)`` runs ``add(3, 2)``."""
        return self.apply_async(args, kwargs)

    def apply_async(
        self, args: Sequence[Any] | None = None, kwargs: Mapping[str, Any] | None = None, **options: Any
    ) -> AsyncResult[Any] | GroupResult:
        """Enqueue it (its options, then ``options``, apply); in eager mode run it here."""
        from .run import apply_async

        return apply_async(self.app, self, args, kwargs, options)

    def apply(
        self, args: Sequence[Any] | None = None, kwargs: Mapping[str, Any] | None = None, **options: Any
    ) -> EagerResult[Any] | GroupResult:
        """Run it here and now, with the same semantics as in a worker (docs/workflows.md)."""
        from .eager import apply_eager

        return apply_eager(self.app, self.clone(args, kwargs, **options))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the task's function here, now (no broker), with the partial arguments."""
        call = self.clone(args, kwargs)
        return self.app.tasks[self.task](*call.args, **call.kwargs)

    def __repr__(self) -> str:
        parts = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs.items()]
        return f"{self.task}({', '.join(parts)}){'!' if self.immutable else ''}"


def _app_of(parts: Iterable[Signature], app: Conveyor | None) -> Conveyor | None:
    """The app a workflow belongs to: the one given, else its first part's (``task.s()`` knows
    its task's app), so a workflow of one app's tasks never falls back to ``current_app``."""
    if app is not None:
        return app
    return next((part._app for part in parts if part._app is not None), None)


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, Mapping):
        return [value]
    return list(value or ())


def _deep_copy(sig: Mapping[str, Any]) -> dict[str, Any]:
    """A copy that shares no mutable part with ``sig`` (its lists and dicts, recursively)."""

    def copy(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {k: copy(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [copy(v) for v in value]
        return value

    return copy(dict(sig))  # type: ignore[no-any-return]


def from_dict(data: Mapping[str, Any], app: Conveyor | None = None) -> Signature:
    """The signature (or chain, group, chord) a dict describes: its JSON form read back."""
    if not isinstance(data, Mapping) or "task" not in data:
        raise TypeError(f"not a signature: {data!r} (a dict with 'task', 'args', 'kwargs', 'options')")
    kind = data.get("subtask_type")
    if kind is None:
        return Signature(
            data["task"],
            data.get("args"),
            data.get("kwargs"),
            data.get("options"),
            bool(data.get("immutable", False)),
            app,
        )
    cls = KINDS.get(kind)
    if cls is None:
        raise TypeError(f"unknown signature subtask_type {kind!r} (expected one of {sorted(KINDS)})")
    sig: Signature = cls.from_parts(data, app)
    return sig


def maybe_signature(value: Any, app: Conveyor | None = None) -> Signature:
    """``value`` as a ``Signature``: a signature as is, a dict read back with ``from_dict``."""
    if isinstance(value, Signature):
        return value
    if isinstance(value, Mapping):
        return from_dict(value, app)
    raise TypeError(f"expected a signature (task.s(...)) or its dict, got {value!r}")


def signature(
    varies: str | Mapping[str, Any],
    args: Sequence[Any] | None = None,
    kwargs: Mapping[str, Any] | None = None,
    options: Mapping[str, Any] | None = None,
    immutable: bool = False,
    app: Conveyor | None = None,
    **more_options: Any,
) -> Signature:
    """A signature by task name, or from its dict (JSON) form.

    >>> signature("proj.add", args=(2,), options={"queue": "math"})     # doctest: +SKIP
    >>> signature(json.loads(stored))                                  # doctest: +SKIP
    """
    if isinstance(varies, Mapping):
        sig = maybe_signature(varies, app)
        return sig.clone(**more_options) if more_options else sig
    return Signature(varies, args, kwargs, {**(options or {}), **more_options}, immutable, app)


def signatures(items: Iterable[Any], app: Conveyor | None = None) -> list[Signature]:
    return [maybe_signature(i, app) for i in items]


# -- workflows: signatures made of signatures ---------------------------------------------------
class Chain(Signature):
    """Steps run one after another; see ``chain``."""

    subtask_kind = "chain"

    def __init__(
        self, tasks: Iterable[Any], options: Mapping[str, Any] | None = None, app: Conveyor | None = None
    ):
        steps: list[Signature] = []
        given = signatures(tasks, app)
        for step in given:
            # A chain of chains is one chain.
            steps.extend(step.tasks if isinstance(step, Chain) else [step])
        if not steps:
            raise ValueError("a chain needs at least one step")
        app = _app_of(given, app)
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
        given = signatures(tasks, app)
        members = [dict(s) for s in given]
        super().__init__("conveyor.group", (), {"tasks": members}, options, app=_app_of(given, app))

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
        given = signatures(header, app)
        body_sig = None if body is None else maybe_signature(body, app)
        parts = {"header": [dict(s) for s in given], "body": None if body_sig is None else dict(body_sig)}
        app = _app_of([*given, *([body_sig] if body_sig is not None else [])], app)
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
