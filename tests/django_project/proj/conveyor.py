"""The project's Conveyor app: a ported proj/celery.py with the imports changed, nothing else."""

import os

from conveyor import Conveyor

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "proj.settings")

app = Conveyor("proj")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.task(bind=True, ignore_result=True)
def debug_task(self) -> None:
    print(f"Request: {self.request!r}")
