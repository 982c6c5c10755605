""" "Run again" for a task from the history: the history keeps the arguments as text (their
repr, ``1, 'x', force=True``; see ``message.describe_args``), so they are read back with
``ast.literal_eval``, which evaluates literals only and never runs code.

Arguments that were shortened for the history (longer than ``taskrecord.ARGS_LIMIT``), or that
are not literals (an object's repr), cannot be rebuilt faithfully: "run again" refuses them
with that reason rather than send something else.

>>> rebuild_call("1, 'x', force=True")
([1, 'x'], {'force': True})
>>> rebuild_call("")
([], {})
"""

from __future__ import annotations

import ast
from typing import Any


class CannotRerun(ValueError):
    """The stored arguments cannot be turned back into the original call."""


def rebuild_call(text: str) -> tuple[list[Any], dict[str, Any]]:
    if not text.strip():
        return [], {}
    if text.endswith("…"):
        raise CannotRerun("its arguments were shortened in the history, so they cannot be sent again")
    try:
        call = ast.parse(f"f({text})", mode="eval").body
        if not isinstance(call, ast.Call) or any(k.arg is None for k in call.keywords):
            raise ValueError("not a plain call")
        args = [ast.literal_eval(a) for a in call.args]
        kwargs = {str(k.arg): ast.literal_eval(k.value) for k in call.keywords}
    except (SyntaxError, ValueError, TypeError, RecursionError, MemoryError) as exc:
        raise CannotRerun(
            f"its arguments are not plain literals ({type(exc).__name__}), so they cannot be rebuilt"
        ) from None
    return args, kwargs
