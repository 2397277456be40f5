"""Exercise 03: delete the selected articles, but only once the user has confirmed.

The first POST, from the changelist, answers with a confirmation page and deletes nothing.
That page posts the same action back with `apply`; only then, if the rows selected are still
the rows the page listed, are the articles logged in the admin's history and deleted,
together, in one transaction.
"""

from django.contrib import admin

# TODO: import what your action uses here: the desk's admin.py (lessons/lending/) shows where
# each name lives.
from .models import Article

CONFIRMATION_TEMPLATE = "admin/confirmation/article/delete_with_confirmation.html"


# TODO: write the helpers your action needs here, such as the signed digest of the listed
# rows (lesson 03, task 5).


@admin.register(Article)
class ArticleAdmin(admin.ModelAdmin):
    list_display = ["title", "status", "pub_date"]
    list_filter = ["status"]
    search_fields = ["title"]
    # TODO: list the action here by its method name (lesson 03, task 1).
    actions = []

    # TODO: write delete_with_confirmation(self, request, queryset), labelled "Delete with
    # custom confirmation", for users who may delete articles: without "apply" in the POST it
    # returns the page of CONFIRMATION_TEMPLATE, with it it deletes (lesson 03, tasks 1 to 5).
