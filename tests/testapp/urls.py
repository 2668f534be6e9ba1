from __future__ import annotations

from django.urls import path

from tests.testapp import views

urlpatterns = [
    path("sends", views.sends),
    path("forgot-await", views.forgot_await),
]
