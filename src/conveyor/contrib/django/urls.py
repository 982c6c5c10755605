"""``path("admin/conveyor/", include("conveyor.contrib.django.urls"))``: see views.py."""

from __future__ import annotations

from django.urls import path

from . import views

app_name = "conveyor"
urlpatterns = [path("schedules/", views.schedules, name="schedules")]
