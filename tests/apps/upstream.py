"""An exception class only the task that raises it imports (as an app's ``services`` module
would be): a process that reads the result without importing it sees a ``RemoteError``."""

from __future__ import annotations


class UpstreamError(Exception):
    """The stubbed weather API answered 503."""
