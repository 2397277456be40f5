"""Exercise 04: actions that depend on who is asking.

Django offers each user only the actions they may run, and refuses the others even when a
forged POST names them. Permissions are declared on the action; the admin checks them.
"""

from django.contrib import admin

from .models import Article


@admin.register(Article)
class ArticleAdmin(admin.ModelAdmin):
    list_display = ["title", "status", "pub_date", "author"]
    list_filter = ["status"]
    search_fields = ["title"]
    # TODO: list the actions of tasks 2 and 3 here, by method name.
    actions = []

    # TODO: override get_actions() here, with Django 6.1's signature, so that only superusers
    # are offered delete_selected (task 1).

    # TODO: write make_published(self, request, queryset) here, for the users who may change
    # articles (task 2).

    # TODO: write notify_authors(self, request, queryset) here, for the users who hold the
    # send_notifications permission, and the has_..._permission method its permissions=[...]
    # makes Django ask (task 3). Helper functions may go above the class.
