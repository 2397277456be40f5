"""Exercise 04: actions that depend on who is asking.

Django offers each user only the actions they may run, and refuses the others even when a
forged POST names them. Permissions are declared on the action; the admin checks them.
"""

from collections import defaultdict

from django.contrib import admin, messages
from django.contrib.admin import ActionLocation
from django.core.exceptions import ValidationError
from django.core.mail import EmailMessage, mailers
from django.core.validators import validate_email
from django.db.models import Value
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext, ngettext

from .models import Article


def is_valid_address(address):
    """Whether Django's EmailValidator accepts `address`.

    It refuses what would break the batch halfway: a newline makes building that email raise,
    after the emails before it were already sent.
    """
    try:
        validate_email(address)
    except ValidationError:
        return False
    return True


def notification(address, titles):
    """The one email an author gets, listing their selected articles."""
    return EmailMessage(
        subject="News about your articles",
        body="An editor has an update on:\n" + "".join(f"- {title}\n" for title in titles),
        to=[address],
    )


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
        # One UPDATE for the whole selection; Coalesce keeps a pub_date that is already set.
        changed = queryset.exclude(status=Article.Status.PUBLISHED).update(
            status=Article.Status.PUBLISHED,
            pub_date=Coalesce("pub_date", Value(timezone.now())),
        )
        if changed:
            message = ngettext(
                "%(count)d article was marked as published.",
                "%(count)d articles were marked as published.",
                changed,
            ) % {"count": changed}
            self.message_user(request, message, messages.SUCCESS)
        elif selected := queryset.count():
            message = ngettext(
                "No articles were changed: the %(count)d selected was already published.",
                "No articles were changed: the %(count)d selected were already published.",
                selected,
            ) % {"count": selected}
            self.message_user(request, message, messages.WARNING)
        else:
            # Deleted, or changed out of the filters, since the changelist was shown.
            message = gettext(
                "No articles were changed: "
                "the selected articles no longer exist or no longer match the filters."
            )
            self.message_user(request, message, messages.WARNING)

    @admin.action(permissions=["notify"], description="Send notification to authors")
    def notify_authors(self, request, queryset):
        # One query for every selected article with its author's address.
        titles, addresses = defaultdict(list), {}
        rows = queryset.values_list("author", "author__email", "title")
        for author, address, title in rows.order_by("author", "title"):
            titles[author].append(title)
            addresses[author] = address
        if not addresses:
            message = gettext(
                "No notifications were sent: "
                "the selected articles no longer exist or no longer match the filters."
            )
            self.message_user(request, message, messages.WARNING)
            return
        # Every address is checked before the first email goes out.
        recipients = [
            author for author, address in addresses.items()
            if address and is_valid_address(address)
        ]
        missing = sum(1 for address in addresses.values() if not address)
        invalid = len(addresses) - len(recipients) - missing
        emails = [notification(addresses[author], titles[author]) for author in recipients]
        # One backend for the whole list: its send_messages() opens one connection for all.
        sent = mailers.default.send_messages(emails) if emails else 0
        self.report_notifications(request, sent, missing, invalid)

    def report_notifications(self, request, sent, missing, invalid):
        """A SUCCESS for the authors notified, a WARNING for each reason some were skipped."""
        if sent:
            message = ngettext(
                "Notifications sent to %(count)d author.",
                "Notifications sent to %(count)d authors.",
                sent,
            ) % {"count": sent}
            self.message_user(request, message, messages.SUCCESS)
        if missing:
            message = ngettext(
                "%(count)d author has no email address and was skipped.",
                "%(count)d authors have no email address and were skipped.",
                missing,
            ) % {"count": missing}
            self.message_user(request, message, messages.WARNING)
        if invalid:
            message = ngettext(
                "%(count)d author has an invalid email address and was skipped.",
                "%(count)d authors have an invalid email address and were skipped.",
                invalid,
            ) % {"count": invalid}
            self.message_user(request, message, messages.WARNING)
