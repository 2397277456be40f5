"""Exercise 03: delete the selected articles, but only once the user has confirmed.

The first POST, from the changelist, answers with a confirmation page and deletes nothing.
That page posts the same action back with `apply`; only then are the articles logged in the
admin's history and deleted, together, in one transaction.
"""

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db import transaction
from django.db.models import Count, ProtectedError
from django.template.response import TemplateResponse
from django.utils.translation import ngettext

from .models import Article

CONFIRMATION_TEMPLATE = "admin/confirmation/article/delete_with_confirmation.html"


@admin.register(Article)
class ArticleAdmin(admin.ModelAdmin):
    list_display = ["title", "status", "pub_date"]
    list_filter = ["status"]
    search_fields = ["title"]
    # TODO: list the action here by method name.
    actions = []

    # TODO: write delete_with_confirmation(self, request, queryset), decorated with
    # @admin.action(permissions=["delete"], description="Delete with custom confirmation").
    # Without "apply" in the POST it returns the confirmation page (CONFIRMATION_TEMPLATE,
    # which you write too); with it, it deletes. Tasks 1-4 of the lesson.
