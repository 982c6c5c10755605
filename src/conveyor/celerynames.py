"""Celery's setting names, so that a ported configuration is read, not silently dropped.

Two tables, used by ``Settings.from_object`` (``app.config_from_object``):

- ``OLD_NAMES``: the upper-case names Celery used before 4.0 (``CELERY_ALWAYS_EAGER``,
  ``CELERYD_CONCURRENCY``, ``BROKER_URL``, ``CELERYBEAT_SCHEDULE``), still found in Django
  settings files, mapped to today's names. Celery 5 still reads them, so Conveyor does too.
- ``CELERY_ONLY``: today's Celery settings that Conveyor does not read. Loading one warns that
  it has no effect (with what to do instead where there is something), rather than calling a
  real Celery setting "unknown".

>>> OLD_NAMES["CELERY_ALWAYS_EAGER"], "result_extended" in CELERY_ONLY
('task_always_eager', True)
"""

from __future__ import annotations

#: Celery 3 name -> Celery 4+ name (the ones ported projects still carry).
OLD_NAMES: dict[str, str] = {
    "BROKER_URL": "broker_url",
    "BROKER_TRANSPORT_OPTIONS": "broker_transport_options",
    "BROKER_CONNECTION_RETRY": "broker_connection_retry",
    "BROKER_CONNECTION_RETRY_ON_STARTUP": "broker_connection_retry_on_startup",
    "BROKER_CONNECTION_MAX_RETRIES": "broker_connection_max_retries",
    "BROKER_POOL_LIMIT": "broker_pool_limit",
    "BROKER_HEARTBEAT": "broker_heartbeat",
    "BROKER_USE_SSL": "broker_use_ssl",
    "ENABLE_UTC": "enable_utc",
    "CELERY_ACCEPT_CONTENT": "accept_content",
    "CELERY_ACKS_LATE": "task_acks_late",
    "CELERY_ALWAYS_EAGER": "task_always_eager",
    "CELERY_ANNOTATIONS": "task_annotations",
    "CELERY_CREATE_MISSING_QUEUES": "task_create_missing_queues",
    "CELERY_DEFAULT_EXCHANGE": "task_default_exchange",
    "CELERY_DEFAULT_PRIORITY": "task_default_priority",
    "CELERY_DEFAULT_QUEUE": "task_default_queue",
    "CELERY_DEFAULT_RATE_LIMIT": "task_default_rate_limit",
    "CELERY_DEFAULT_ROUTING_KEY": "task_default_routing_key",
    "CELERY_DISABLE_RATE_LIMITS": "worker_disable_rate_limits",
    "CELERY_EAGER_PROPAGATES_EXCEPTIONS": "task_eager_propagates",
    "CELERY_ENABLE_REMOTE_CONTROL": "worker_enable_remote_control",
    "CELERY_IGNORE_RESULT": "task_ignore_result",
    "CELERY_IMPORTS": "imports",
    "CELERY_INCLUDE": "include",
    "CELERY_MESSAGE_COMPRESSION": "task_compression",
    "CELERY_QUEUES": "task_queues",
    "CELERY_REJECT_ON_WORKER_LOST": "task_reject_on_worker_lost",
    "CELERY_RESULT_BACKEND": "result_backend",
    "CELERY_RESULT_COMPRESSION": "result_compression",
    "CELERY_RESULT_EXTENDED": "result_extended",
    "CELERY_RESULT_PERSISTENT": "result_persistent",
    "CELERY_RESULT_SERIALIZER": "result_serializer",
    "CELERY_ROUTES": "task_routes",
    "CELERY_SEND_EVENTS": "worker_send_task_events",
    "CELERY_SEND_TASK_SENT_EVENT": "task_send_sent_event",
    "CELERY_STORE_ERRORS_EVEN_IF_IGNORED": "task_store_errors_even_if_ignored",
    "CELERY_TASK_PUBLISH_RETRY": "task_publish_retry",
    "CELERY_TASK_PUBLISH_RETRY_POLICY": "task_publish_retry_policy",
    "CELERY_TASK_RESULT_EXPIRES": "result_expires",
    "CELERY_TASK_SERIALIZER": "task_serializer",
    "CELERY_TIMEZONE": "timezone",
    "CELERY_TRACK_STARTED": "task_track_started",
    "CELERYBEAT_MAX_LOOP_INTERVAL": "beat_max_loop_interval",
    "CELERYBEAT_SCHEDULE": "beat_schedule",
    "CELERYBEAT_SCHEDULER": "beat_scheduler",
    "CELERYBEAT_SCHEDULE_FILENAME": "beat_schedule_filename",
    "CELERYD_CONCURRENCY": "worker_concurrency",
    "CELERYD_HIJACK_ROOT_LOGGER": "worker_hijack_root_logger",
    "CELERYD_LOG_FORMAT": "worker_log_format",
    "CELERYD_MAX_MEMORY_PER_CHILD": "worker_max_memory_per_child",
    "CELERYD_MAX_TASKS_PER_CHILD": "worker_max_tasks_per_child",
    "CELERYD_POOL": "worker_pool",
    "CELERYD_PREFETCH_MULTIPLIER": "worker_prefetch_multiplier",
    "CELERYD_TASK_LOG_FORMAT": "worker_task_log_format",
    "CELERYD_TASK_SOFT_TIME_LIMIT": "task_soft_time_limit",
    "CELERYD_TASK_TIME_LIMIT": "task_time_limit",
}

#: Celery 5 settings with no effect in Conveyor (beyond those in ``config.INSTEAD``, which say
#: what to do instead). A setting another part of Conveyor reads is a field of ``Settings`` and
#: wins over this list.
CELERY_ONLY: frozenset[str] = frozenset(
    {
        "beat_cron_starting_deadline",
        "beat_max_loop_interval",
        "beat_schedule_filename",
        "beat_scheduler",
        "beat_sync_every",
        "broker_channel_error_retry",
        "broker_connection_max_retries",
        "broker_connection_retry",
        "broker_connection_retry_on_startup",
        "broker_connection_timeout",
        "broker_failover_strategy",
        "broker_heartbeat",
        "broker_heartbeat_checkrate",
        "broker_login_method",
        "broker_pool_limit",
        "broker_read_url",
        "broker_use_ssl",
        "broker_write_url",
        "cache_backend",
        "control_exchange",
        "event_serializer",
        "result_accept_content",
        "result_backend_transport_options",
        "result_cache_max",
        "result_chord_join_timeout",
        "result_extended",
        "result_persistent",
        "task_acks_on_failure_or_timeout",
        "task_annotations",
        "task_create_missing_queues",
        "task_default_delivery_mode",
        "task_default_exchange",
        "task_default_exchange_type",
        "task_default_queue_type",
        "task_default_rate_limit",
        "task_default_routing_key",
        "task_inherit_parent_priority",
        "task_protocol",
        "task_queue_max_priority",
        "task_queues",
        "task_remote_tracebacks",
        "task_store_eager_result",
        "task_store_errors_even_if_ignored",
        "worker_cancel_long_running_tasks_on_connection_loss",
        "worker_direct",
        "worker_disable_rate_limits",
        "worker_enable_remote_control",
        "worker_hijack_root_logger",
        "worker_log_color",
        "worker_log_format",
        "worker_lost_wait",
        "worker_pool_restarts",
        "worker_redirect_stdouts",
        "worker_redirect_stdouts_level",
        "worker_soft_shutdown_timeout",
        "worker_state_db",
        "worker_task_log_format",
        "worker_timer_precision",
    }
)


def setting_name(attribute: str, namespace: str | None) -> str | None:
    """The setting an attribute of a configuration object sets, or None when it sets none.

    With a namespace (``"CELERY"``, ``"CONVEYOR"``), only attributes starting with it count:
    ``CELERY_TASK_ROUTES`` is ``task_routes``; Celery's pre-4.0 names under that prefix
    (``CELERY_ALWAYS_EAGER``, ``CELERYD_CONCURRENCY``) are translated. Without one, lower-case
    names are taken as they are and upper-case names are Celery's old style (``BROKER_URL``);
    the caller keeps only names that are settings (a module also holds imports and helpers).

    >>> setting_name("CELERY_TASK_ROUTES", "CELERY"), setting_name("CELERYD_CONCURRENCY", "CELERY")
    ('task_routes', 'worker_concurrency')
    >>> setting_name("DATABASES", "CELERY") is None
    True
    """
    if namespace:
        if attribute in OLD_NAMES and attribute.startswith(namespace):
            return OLD_NAMES[attribute]
        prefix = f"{namespace}_"
        return attribute[len(prefix) :].lower() if attribute.startswith(prefix) else None
    if attribute in OLD_NAMES:
        return OLD_NAMES[attribute]
    return attribute.lower() if attribute.isupper() else attribute
