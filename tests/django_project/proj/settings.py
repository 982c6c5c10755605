"""Settings of the test Django project: Celery's setting names under the CELERY_ namespace.

The test harness passes the broker and database locations in the environment.
"""

import os

SECRET_KEY = "test-only"
DEBUG = False
ALLOWED_HOSTS = ["testserver", "localhost"]
ROOT_URLCONF = "proj.urls"
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django_celery_beat",
    "conveyor.contrib.django",
    "orders.apps.OrdersConfig",
    "billing",
]

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

if os.environ.get("PROJ_WITHOUT_BEAT"):  # a project that never used django_celery_beat
    INSTALLED_APPS.remove("django_celery_beat")

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("PROJ_DB", "db.sqlite3"),
    },
    "archive": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("PROJ_ARCHIVE_DB", "archive.sqlite3"),
    },
}

if os.environ.get("PROJ_PG_PORT"):  # the tests' throwaway PostgreSQL (tests/contrib/django/postgres.py)
    DATABASES["default"] = {
        "ENGINE": "django.db.backends.postgresql",
        "HOST": "127.0.0.1",
        "PORT": os.environ["PROJ_PG_PORT"],
        "NAME": os.environ["PROJ_PG_DB"],
        "USER": "conveyor",
        "CONN_MAX_AGE": None,  # persistent connections: the case a restart hurts most
    }

CELERY_BROKER_URL = os.environ.get("PROJ_BROKER_URL", "sqlite:///conveyor.db")
CELERY_RESULT_BACKEND = None
CELERY_TIMEZONE = "UTC"
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_EXTENDED = True  # a Celery setting Conveyor does not read: warned about
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_TIME_LIMIT = 30 * 60
CELERY_TASK_SOFT_TIME_LIMIT = 28 * 60
CELERY_WORKER_PREFETCH_MULTIPLIER = 2  # not the default (1): the test sees it was read
CELERY_TASK_ROUTES = {
    "billing.tasks.*": {"queue": "billing"},
}
CELERY_BEAT_SCHEDULE = {
    "count-orders": {"task": "orders.tasks.count_orders", "schedule": 3600.0},
}
