# As in Celery's Django guide: the app is created whenever Django starts, so @shared_task uses it.
from .conveyor import app as conveyor_app

__all__ = ("conveyor_app",)
