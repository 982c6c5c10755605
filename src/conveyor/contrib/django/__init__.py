"""Django integration: ``conveyor.contrib.django``.

Two parts (docs/django.md):

- The fix-up (``fixup.py``), switched on by ``Conveyor(...)`` whenever ``DJANGO_SETTINGS_MODULE``
  is set, as Celery's is: the worker and beat call ``django.setup()`` before importing task
  modules, ``app.autodiscover_tasks()`` finds every installed app's ``tasks`` module, and in the
  worker database connections are checked around each task and not shared across the
  ``--processes`` fork.
- A Django app: add ``"conveyor.contrib.django"`` to ``INSTALLED_APPS`` for the management
  command ``python manage.py conveyor_import_beat`` (django_celery_beat's periodic tasks into
  Conveyor's schedules, ``beat_import.py``) and a staff page in the admin listing the entries,
  with enable/disable/run now/remove (``views.py``, mounted with ``urls.py``).

Importing this package does not import Django.
"""
