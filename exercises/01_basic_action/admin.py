"""Exercise 01: your first admin actions.

Two actions on the Article changelist: publish the selected articles, or send them back to
draft. Each changes every selected row with one UPDATE and tells the user what it did.
"""

from django.contrib import admin

# TODO: import what your actions use here: lesson 01's worked example shows where it lives.
from .models import Article


@admin.register(Article)
class ArticleAdmin(admin.ModelAdmin):
    list_display = ["title", "status", "pub_date"]
    list_filter = ["status"]
    search_fields = ["title"]
    # TODO: name your two actions in this list, as strings (lesson 01, Tasks 1 and 3).
    actions = []

    # TODO: write make_published and make_draft here, as methods decorated with @admin.action
    # (lesson 01, Tasks 1 to 4).
