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
    actions = ["delete_with_confirmation"]

    @admin.action(permissions=["delete"], description="Delete with custom confirmation")
    def delete_with_confirmation(self, request, queryset):
        if "apply" not in request.POST:
            return self.delete_confirmation_page(request, queryset)
        # The user has confirmed. All or nothing: the log entries and every row go together.
        try:
            with transaction.atomic():
                count = queryset.count()
                self.log_deletions(request, queryset)
                self.delete_queryset(request, queryset)
        except ProtectedError as error:
            protectors = ", ".join(
                sorted(f"{obj._meta.verbose_name} “{obj}”" for obj in error.protected_objects)
            )
            self.message_user(
                request,
                f"No articles were deleted: they are still in use by {protectors}. "
                "Free them first.",
                messages.ERROR,
            )
            return None
        if count:
            message = ngettext(
                "Deleted %(count)d article.", "Deleted %(count)d articles.", count
            ) % {"count": count}
            self.message_user(request, message, messages.SUCCESS)
        else:
            self.message_user(
                request,
                "No articles were deleted: the selected articles no longer exist.",
                messages.WARNING,
            )
        # Return None to display the change list page again.
        return None

    def delete_confirmation_page(self, request, queryset):
        """The page that asks "are you sure?", and re-posts the selection when you are."""
        select_across = request.POST.get("select_across") == "1"
        articles = queryset.annotate(comment_count=Count("comments"))
        if select_across:
            # The filters in the URL choose the rows; re-sending a hidden input per row
            # would exceed DATA_UPLOAD_MAX_NUMBER_FIELDS on a big selection.
            selected = request.POST.getlist(helpers.ACTION_CHECKBOX_NAME)
        else:
            selected = [article.pk for article in articles]
        context = {
            **self.admin_site.each_context(request),
            "title": "Delete these articles?",
            "opts": self.opts,
            "articles": articles,
            "comment_total": sum(article.comment_count for article in articles),
            "selected": selected,
            "select_across": select_across,
            "index": request.POST.get("index", "0"),
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "changelist_url": request.get_full_path(),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, CONFIRMATION_TEMPLATE, context)
