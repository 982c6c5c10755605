"""Signatures: one task call as data, Celery's ``Signature`` (a ``dict``, so it is JSON as is:
it can be an argument, a beat entry, or sent from the CLI or an HTTP API).

    {"task": "proj.add", "args": [2], "kwargs": {}, "options": {"queue": "math"},
     "subtask_type": null, "immutable": false}

``subtask_type`` is None for a task, or ``"chain"``, ``"group"``, ``"chord"`` for the
workflows in workflows.py, which keep their parts in ``kwargs``. ``options`` are the enqueue
options of ``apply_async`` (queue, countdown, priority, task_id, ...) plus ``link`` and
``link_error``: callbacks, as signatures.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..options import MESSAGE_OPTIONS, check_options

if TYPE_CHECKING:
    from ..app import Conveyor
    from ..results import AsyncResult, EagerResult, GroupResult
    from .workflows import Chain

#: Options that wire a workflow rather than shape the message.
CALLBACK_OPTIONS = frozenset({"link", "link_error"})
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
        from .workflows import chain

        if not isinstance(other, Signature):
            return NotImplemented
        return chain(self, other)

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
    from .workflows import KINDS

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
