"""Exercise 01: your first admin actions.

Two actions on the Article changelist: publish the selected articles, or send them back to
draft. Each changes every selected row with one UPDATE and tells the user what it did.
"""

from django.contrib import admin, messages
from django.db.models import Value
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import ngettext

from .models import Article


@admin.register(Article)
class ArticleAdmin(admin.ModelAdmin):
    list_display = ["title", "status", "pub_date"]
    list_filter = ["status"]
    search_fields = ["title"]
    # TODO: list your actions here by method name, e.g. actions = ["make_published"].
    actions = []

    # TODO: write make_published(self, request, queryset) and make_draft(self, request, queryset)
    # here, each decorated with @admin.action(description=...). Tasks 1-3 of the lesson.
