"""An app whose tasks live in another module, named by ``include=`` (imported by the worker)."""

from conveyor import Conveyor

app = Conveyor("include_app", include=["tests.apps.include_tasks"])
