"""Exercise 04: actions that depend on who is asking.

Django offers each user only the actions they may run, and refuses the others even when a
forged POST names them. Permissions are declared on the action; the admin checks them.
"""

from collections import defaultdict

from django.contrib import admin, messages
from django.contrib.admin import ActionLocation
from django.core.mail import EmailMessage, mailers
from django.db.models import Value
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import ngettext

from .models import Article


@admin.register(Article)
class ArticleAdmin(admin.ModelAdmin):
    list_display = ["title", "status", "pub_date", "author"]
    list_filter = ["status"]
    search_fields = ["title"]
    actions = ["make_published", "notify_authors"]

    def get_actions(self, request, action_location=ActionLocation.CHANGE_LIST):
        # Django 6.1 passes action_location: list and change-form actions are asked apart.
        actions = super().get_actions(request, action_location)
        if not request.user.is_superuser:
            actions.pop("delete_selected", None)
        return actions

    def has_notify_permission(self, request):
        """Called for actions declared with permissions=["notify"]."""
        opts = self.opts
        return request.user.has_perm(f"{opts.app_label}.send_notifications")

    @admin.action(permissions=["change"], description="Mark selected articles as published")
    def make_published(self, request, queryset):
        changed = queryset.exclude(status=Article.Status.PUBLISHED).update(
            status=Article.Status.PUBLISHED,
            pub_date=Coalesce("pub_date", Value(timezone.now())),
        )
        message = ngettext(
            "%(count)d article was marked as published.",
            "%(count)d articles were marked as published.",
            changed,
        ) % {"count": changed}
        self.message_user(request, message, messages.SUCCESS)

    @admin.action(permissions=["notify"], description="Send notification to authors")
    def notify_authors(self, request, queryset):
        # One query for every selected article with its author's address.
        titles, addresses = defaultdict(list), {}
        rows = queryset.values_list("author", "author__email", "title")
        for author, email, title in rows.order_by("author", "title"):
            titles[author].append(title)
            addresses[author] = email
        emails = [
            EmailMessage(
                subject="News about your articles",
                body="An editor has an update on:\n"
                + "".join(f"- {title}\n" for title in titles[author]),
                to=[addresses[author]],
            )
            for author in titles
            if addresses[author]
        ]
        # One connection for every email, not one per author.
        sent = mailers.default.send_messages(emails) if emails else 0
        if sent:
            message = ngettext(
                "Notifications sent to %(count)d author.",
                "Notifications sent to %(count)d authors.",
                sent,
            ) % {"count": sent}
            self.message_user(request, message, messages.SUCCESS)
        skipped = len(titles) - len(emails)
        if skipped:
            message = ngettext(
                "%(count)d author has no email address and was skipped.",
                "%(count)d authors have no email address and were skipped.",
                skipped,
            ) % {"count": skipped}
            self.message_user(request, message, messages.WARNING)
