"""Exercise 03: delete the selected articles, but only once the user has confirmed.

The first POST, from the changelist, answers with a confirmation page and deletes nothing. The
page lists the selection and carries a signed digest of it; if a selected article cannot be
deleted, the page says so and offers no "Yes". The page's form posts the same action back with
`apply`. Only if the rows selected then are exactly the rows the page listed are they logged in
the admin's history and deleted, together, in one transaction.
"""

import hashlib

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core import signing
from django.db import router, transaction
from django.db.models import PROTECT, RESTRICT, Count, ProtectedError, RestrictedError
from django.template.response import TemplateResponse
from django.utils.crypto import constant_time_compare
from django.utils.translation import ngettext

from .models import Article

CONFIRMATION_TEMPLATE = "admin/confirmation/article/delete_with_confirmation.html"
DIGEST_FIELD = "digest"
GONE = "Nothing was deleted: none of the selected articles exists any more."
CHANGED = (
    "Nothing was deleted: the selection no longer matches the page you confirmed. "
    "Check the articles below and confirm again."
)


def selection_signer():
    # The salt names what the signature vouches for: a value signed elsewhere never passes.
    return signing.Signer(salt="confirmation.ArticleAdmin.delete_with_confirmation")


def fingerprint(pks):
    """The same 64 characters for the same set of rows, however many there are."""
    return hashlib.sha256(",".join(str(pk) for pk in sorted(pks)).encode()).hexdigest()


def describe(obj):
    return f"{obj._meta.verbose_name} “{obj}”"


@admin.register(Article)
class ArticleAdmin(admin.ModelAdmin):
    list_display = ["title", "status", "pub_date"]
    list_filter = ["status"]
    search_fields = ["title"]
    actions = ["delete_with_confirmation"]

    @admin.action(permissions=["delete"], description="Delete with custom confirmation")
    def delete_with_confirmation(self, request, queryset):
        if "apply" not in request.POST:
            return self.delete_confirmation_page(request, queryset)
        # All or nothing: the check, the history entries and the rows go together.
        try:
            with transaction.atomic(using=router.db_for_write(self.model)):
                # With select_across the queryset was just rebuilt from the URL's filters:
                # it holds the rows that match now, which need not be the rows the page listed.
                pks = list(queryset.values_list("pk", flat=True))
                confirmed = bool(pks) and self.page_listed(request, pks)
                if confirmed:
                    self.log_deletions(request, queryset)
                    self.delete_queryset(request, queryset)
        except (ProtectedError, RestrictedError) as error:
            self.message_user(request, self.still_in_use(error), messages.ERROR)
            return None
        if not pks:
            self.message_user(request, GONE, messages.WARNING)
            return None
        if not confirmed:
            self.message_user(request, CHANGED, messages.WARNING)
            return self.delete_confirmation_page(request, queryset)
        message = ngettext(
            "Deleted %(count)d article.", "Deleted %(count)d articles.", len(pks)
        ) % {"count": len(pks)}
        self.message_user(request, message, messages.SUCCESS)
        # Return None to display the change list page again.
        return None

    def page_listed(self, request, pks):
        """Did the confirmation page the user answered list exactly these rows?"""
        try:
            listed = selection_signer().unsign(request.POST.get(DIGEST_FIELD, ""))
        except signing.BadSignature:
            return False
        return constant_time_compare(listed, fingerprint(pks))

    def still_in_use(self, error):
        """The ERROR for a delete that PROTECT or RESTRICT stopped, naming what is in the way."""
        if isinstance(error, ProtectedError):
            blockers = error.protected_objects
        else:
            blockers = error.restricted_objects
        names = ", ".join(sorted(describe(obj) for obj in blockers))
        return ngettext(
            "Nothing was deleted: %(names)s still refers to a selected article. "
            "Remove it first.",
            "Nothing was deleted: %(names)s still refer to selected articles. "
            "Remove them first.",
            len(blockers),
        ) % {"names": names}

    def blocking_rows(self, queryset):
        """What keeps selected articles from being deleted: rows whose PROTECT or RESTRICT
        foreign key points at one. One query per such relation, whatever the selection."""
        blocking = []
        for relation in self.opts.related_objects:
            if relation.on_delete not in (PROTECT, RESTRICT):
                continue
            field = relation.field.name
            rows = relation.related_model._base_manager.filter(
                **{f"{field}__in": queryset}
            ).select_related(field)
            blocking += [{"row": describe(row), "article": getattr(row, field)} for row in rows]
        return blocking

    def delete_confirmation_page(self, request, queryset):
        """The page that asks "are you sure?", and re-posts the selection when you are."""
        articles = list(queryset.annotate(comment_count=Count("comments")))
        if not articles:
            self.message_user(request, GONE, messages.WARNING)
            return None
        select_across = request.POST.get("select_across") == "1"
        if select_across:
            # The filters in the URL choose the rows; re-sending a hidden input per row
            # would exceed DATA_UPLOAD_MAX_NUMBER_FIELDS on a big selection.
            selected = request.POST.getlist(helpers.ACTION_CHECKBOX_NAME)
        else:
            selected = [article.pk for article in articles]
        blocking = self.blocking_rows(queryset)
        context = {
            **self.admin_site.each_context(request),
            "title": "Cannot delete these articles" if blocking else "Delete these articles?",
            "opts": self.opts,
            "articles": articles,
            "comment_total": sum(article.comment_count for article in articles),
            "blocking": blocking,
            "selected": selected,
            "select_across": select_across,
            "digest_field": DIGEST_FIELD,
            "digest": selection_signer().sign(fingerprint(a.pk for a in articles)),
            "index": request.POST.get("index", "0"),
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "changelist_url": request.get_full_path(),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, CONFIRMATION_TEMPLATE, context)
