"""Exercise 06: actions on an article's own page.

Since Django 6.1 an action can be offered on the change form as well as on the changelist.
There it runs on the one article the page shows, before the page checks whether the user
may change it.
"""

from django.contrib import admin, messages
from django.contrib.admin import ActionLocation
from django.contrib.admin.templatetags.admin_urls import add_preserved_filters
from django.db.models import Value
from django.db.models.functions import Coalesce
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext, ngettext

from .models import Article

DRAFT, PUBLISHED = Article.Status.DRAFT, Article.Status.PUBLISHED
COPY_SUFFIX = " (copy)"


def copy_title(title):
    """The copy's title: the original's, cut so that the suffix still fits the column."""
    room = Article._meta.get_field("title").max_length - len(COPY_SUFFIX)
    return title[:room] + COPY_SUFFIX


@admin.register(Article)
class ArticleAdmin(admin.ModelAdmin):
    list_display = ["title", "status", "pub_date", "author"]
    list_filter = ["status"]
    search_fields = ["title"]
    actions = ["publish", "unpublish", "duplicate_as_draft"]

    def get_actions(self, request, action_location=ActionLocation.CHANGE_LIST):
        # Without action_location in the signature, Django 6.1 offers no change-form action.
        actions = super().get_actions(request, action_location)
        if not request.user.is_superuser:
            actions.pop("delete_selected", None)
        return actions

    # A change-form action runs before the page checks the change permission: every action
    # that changes data declares who may run it.
    @admin.action(
        permissions=["change"],
        description="Publish this article",
        description_plural="Publish selected articles",
        location=[ActionLocation.CHANGE_LIST, ActionLocation.CHANGE_FORM],
    )
    def publish(self, request, queryset):
        # One UPDATE; Coalesce keeps the date an article that went out before already has.
        published = queryset.filter(status=DRAFT).update(
            status=PUBLISHED, pub_date=Coalesce("pub_date", Value(timezone.now()))
        )
        if published:
            message = ngettext(
                "%(count)d article was published.",
                "%(count)d articles were published.",
                published,
            ) % {"count": published}
            self.message_user(request, message, messages.SUCCESS)
        else:
            message = gettext(
                "No articles were published: none of the selected articles is a draft."
            )
            self.message_user(request, message, messages.WARNING)

    @admin.action(
        permissions=["change"],
        description="Unpublish this article",
        location=ActionLocation.CHANGE_FORM,
    )
    def unpublish(self, request, queryset):
        # pub_date stays: it records when the article first went out.
        unpublished = queryset.filter(status=PUBLISHED).update(status=DRAFT)
        if unpublished:
            message = ngettext(
                "%(count)d article was unpublished.",
                "%(count)d articles were unpublished.",
                unpublished,
            ) % {"count": unpublished}
            self.message_user(request, message, messages.SUCCESS)
        else:
            message = gettext(
                "No articles were unpublished: none of the selected articles is published."
            )
            self.message_user(request, message, messages.WARNING)

    @admin.action(
        permissions=["add"],
        description="Duplicate as draft",
        location=ActionLocation.CHANGE_FORM,
    )
    def duplicate_as_draft(self, request, queryset):
        # On the change form the queryset holds exactly the article the page shows.
        original = queryset.get()
        copy = Article.objects.create(
            title=copy_title(original.title),
            body=original.body,
            author_id=original.author_id,
            status=DRAFT,
        )
        # Many-to-many rows live in their own table: a new article starts with none.
        copy.tags.set(original.tags.all())
        self.log_addition(request, copy, [{"added": {}}])
        self.message_user(
            request,
            gettext("“%(title)s” was added as a draft. You may edit it below.")
            % {"title": copy.title},
            messages.SUCCESS,
        )
        # The whole POST is one transaction: if anything above fails, no copy is left.
        url = reverse(
            f"admin:{self.opts.app_label}_{self.opts.model_name}_change",
            args=[copy.pk],
            current_app=self.admin_site.name,
        )
        # Keep the list the user came from, as Django's own Save does.
        context = {"preserved_filters": self.get_preserved_filters(request), "opts": self.opts}
        return HttpResponseRedirect(add_preserved_filters(context, url))
