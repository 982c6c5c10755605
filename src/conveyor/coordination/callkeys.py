"""Keys computed from a task call's arguments: ``lock="scrape:{source}"`` or a callable.

A template names the function's parameters (``"{source}"``, ``"{user.id}"``, ``"{ids[0]}"``);
it is checked against the signature when the task is declared, so a typo fails at import
time, not on the first run in production. A callable receives the call's arguments by name
(defaults applied) and returns the key.

>>> def scrape(source: str, full: bool = False) -> None: ...
>>> key = CallKey("lock", "scrape:{source}", "tasks.scrape", inspect.signature(scrape))
>>> key.render(key.arguments(["nasa"], {}))
'scrape:nasa'
"""

from __future__ import annotations

import inspect
import re
import string
from collections.abc import Callable, Mapping, Sequence
from typing import Any

KeySpec = str | Callable[[dict[str, Any]], str]

_FIELD_BASE = re.compile(r"[^.\[]*")


def task_signature(fn: Callable[..., Any], bind: bool) -> inspect.Signature:
    """The signature callers see (without ``self`` for a ``bind=True`` task)."""
    sig = inspect.signature(fn)
    if bind:
        sig = sig.replace(parameters=list(sig.parameters.values())[1:])
    return sig


def call_arguments(
    signature: inspect.Signature, task_name: str, args: Sequence[Any], kwargs: Mapping[str, Any]
) -> dict[str, Any]:
    """The call's arguments by parameter name, defaults applied (``**kwargs`` spread out)."""
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError as exc:
        raise TypeError(f"{task_name}() called with wrong arguments: {exc}") from None
    bound.apply_defaults()
    out: dict[str, Any] = {}
    for name, value in bound.arguments.items():
        if signature.parameters[name].kind is inspect.Parameter.VAR_KEYWORD:
            out.update(value)
        else:
            out[name] = value
    return out


class CallKey:
    """A key template (or callable) of one task option, validated against the task's signature."""

    def __init__(self, option: str, spec: KeySpec, task_name: str, signature: inspect.Signature) -> None:
        self.option = option
        self.spec = spec
        self.task_name = task_name
        self.signature = signature
        if isinstance(spec, str):
            self._check_template(spec)
        elif not callable(spec):
            raise TypeError(
                f"{option} of task {task_name} must be a template string like 'scrape:{{source}}'"
                f" or a callable taking the call's arguments, got {spec!r}"
            )

    def __repr__(self) -> str:
        return f"<CallKey {self.option}={self.spec!r}>"

    def _check_template(self, spec: str) -> None:
        if not spec:
            raise ValueError(f"{self.option} of task {self.task_name} must not be empty")
        try:
            fields = [f for _, f, _, _ in string.Formatter().parse(spec) if f is not None]
        except ValueError as exc:
            raise ValueError(
                f"{self.option}={spec!r} of task {self.task_name} is not a valid template: {exc}"
            ) from None
        params = self.signature.parameters
        open_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        for field in fields:
            base = _FIELD_BASE.match(field).group()  # type: ignore[union-attr]  # always matches
            if not base or base.isdigit():
                raise ValueError(
                    f"{self.option}={spec!r} of task {self.task_name}: name the parameter in the"
                    " template (e.g. '{source}'), positions like '{}' or '{0}' are not supported"
                )
            if base not in params and not open_kwargs:
                raise ValueError(
                    f"{self.option}={spec!r} of task {self.task_name} references {base!r}, which is"
                    f" not a parameter of the task (parameters: {', '.join(params) or 'none'})"
                )

    def arguments(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> dict[str, Any]:
        return call_arguments(self.signature, self.task_name, args, kwargs)

    def render(self, arguments: dict[str, Any]) -> str:
        """The key for one call. Raises ``ValueError`` naming the option when it cannot be built."""
        spec = self.spec
        try:
            key = spec.format_map(arguments) if isinstance(spec, str) else spec(dict(arguments))
        except (KeyError, IndexError, AttributeError) as exc:
            raise ValueError(
                f"{self.option}={spec!r} of task {self.task_name}: this call has no value for {exc}"
            ) from None
        if not isinstance(key, str) or not key:
            raise ValueError(
                f"{self.option} of task {self.task_name} must produce a non-empty string, got {key!r}"
            )
        return key

    def for_call(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> str:
        return self.render(self.arguments(args, kwargs))
