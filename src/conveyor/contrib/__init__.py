"""Integrations with other software, each optional (its library is an extra): ``sentry``, ``django``."""
