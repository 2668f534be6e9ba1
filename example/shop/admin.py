from __future__ import annotations

from django.contrib import admin

from example.shop.models import Signup, Visit


@admin.register(Signup)
class SignupAdmin(admin.ModelAdmin):
    list_display = ["email", "created_at", "welcome_sent_at", "score"]
    search_fields = ["email"]


@admin.register(Visit)
class VisitAdmin(admin.ModelAdmin):
    list_display = ["page", "at"]
    list_filter = ["page"]
