from __future__ import annotations

from django.contrib import admin
from django.urls import path

from example.shop import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", views.healthz, name="healthz"),
    path("signup", views.signup, name="signup"),
    path("signup/sync", views.signup_sync, name="signup-sync"),
    path("visits/<slug:page>", views.visits, name="visits"),
    path("visits/<slug:page>/async", views.visits_async, name="visits-async"),
    path("signups/<int:signup_id>", views.signup_detail, name="signup-detail"),
    path("reports", views.report, name="report"),
    path("tasks/<str:task_id>", views.task_status, name="task-status"),
]
