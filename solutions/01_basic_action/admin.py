"""Exercise 01: your first admin actions.

Two actions on the Article changelist: publish the selected articles, or send them back to
draft. Each changes every selected row with one UPDATE, is offered only to users who may
change articles, and tells the user what it did.
"""

from django.contrib import admin, messages
from django.db.models import Value
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext, ngettext

from .models import Article


@admin.register(Article)
class ArticleAdmin(admin.ModelAdmin):
    list_display = ["title", "status", "pub_date"]
    list_filter = ["status"]
    search_fields = ["title"]
    # The actions the changelist offers, by method name.
    actions = ["make_published", "make_draft"]

    # permissions=["change"]: without it Django offers an action to everyone who may view
    # the changelist, read-only staff included.
    @admin.action(description="Mark selected articles as published", permissions=["change"])
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
            return
        # Nothing changed: say why, the rows being gone or all published already.
        selected = queryset.count()
        if not selected:
            message = gettext(
                "No articles were changed: the selected articles no longer exist or no "
                "longer match the filters."
            )
        else:
            message = ngettext(
                "No articles were changed: the %(count)d selected was already published.",
                "No articles were changed: the %(count)d selected were already published.",
                selected,
            ) % {"count": selected}
        self.message_user(request, message, messages.WARNING)

    @admin.action(description="Mark selected articles as draft", permissions=["change"])
    def make_draft(self, request, queryset):
        # pub_date stays: it records when the article first went out.
        changed = queryset.exclude(status=Article.Status.DRAFT).update(
            status=Article.Status.DRAFT
        )
        if changed:
            message = ngettext(
                "%(count)d article was marked as draft.",
                "%(count)d articles were marked as draft.",
                changed,
            ) % {"count": changed}
            self.message_user(request, message, messages.SUCCESS)
            return
        selected = queryset.count()
        if not selected:
            message = gettext(
                "No articles were changed: the selected articles no longer exist or no "
                "longer match the filters."
            )
        else:
            message = ngettext(
                "No articles were changed: the %(count)d selected was already a draft.",
                "No articles were changed: the %(count)d selected were already drafts.",
                selected,
            ) % {"count": selected}
        self.message_user(request, message, messages.WARNING)
