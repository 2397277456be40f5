"""Exercise 08, a reference answer: actions that take a parameter, and one that needs no
selection."""

from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import ActionLocation, helpers
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy, ngettext

from .models import Article, Category

YEAR_DAYS = 365  # an article published longer ago than this is old


class MoveForm(helpers.ActionForm):
    """The action bar, with the category to move to. Django validates this whole form before
    it runs any action, and answers "No action selected." when it is invalid: a strict
    category field here would stop every action of the bar, and hide why."""

    category = forms.CharField(required=False, widget=forms.Select)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["category"].widget.choices = [
            ("", "---------"), *Category.objects.values_list("pk", "name")]


class CategoryForm(forms.Form):
    """What move_to_category checks: a category that exists, or the reason there is none."""

    category = forms.ModelChoiceField(Category.objects.all(), error_messages={
        "required": gettext_lazy("Choose a category to move the articles to.")})


def posted_category(request):
    """(the category posted in the action bar, None) or (None, why not). On the change page
    the bar's fields carry the CHANGE_FORM- prefix; on the changelist, none."""
    on_the_page = f"{ActionLocation.CHANGE_FORM.value}-action" in request.POST
    form = CategoryForm(request.POST,
                        prefix=ActionLocation.CHANGE_FORM.value if on_the_page else None)
    if form.is_valid():
        return form.cleaned_data["category"], None
    return None, form.errors["category"][0]


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin):
    list_display = ["name"]
    search_fields = ["name"]


@admin.register(Article)
class ArticleAdmin(admin.ModelAdmin):
    list_display = ["title", "status", "pub_date", "category"]
    list_filter = ["status", "category"]
    search_fields = ["title"]
    action_form = MoveForm
    actions = ["move_to_category"]

    @admin.action(permissions=["change"], description=gettext_lazy("Move to category"),
                  location=[ActionLocation.CHANGE_LIST, ActionLocation.CHANGE_FORM])
    def move_to_category(self, request, queryset):
        category, why = posted_category(request)
        if category is None:
            self.message_user(request, why, messages.ERROR)
            return
        count = queryset.update(category=category)
        self.message_user(request, ngettext(
            "Moved %(count)d article to %(category)s.",
            "Moved %(count)d articles to %(category)s.", count,
        ) % {"count": count, "category": category}, messages.SUCCESS)

    def get_urls(self):
        # Before the admin's own: its catch-all "<path:object_id>/" would take archive-old/.
        return [path("archive-old/", self.admin_site.admin_view(self.archive_old),
                     name="parameters_article_archive_old"), *super().get_urls()]

    def archive_old(self, request):
        """The changelist's button: every article published over a year ago, archived in one
        UPDATE. admin_view has sent anyone not logged in to the login page and checked the
        CSRF token; the method and the model's change permission are this view's to check."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_change_permission(request):
            raise PermissionDenied
        cutoff = timezone.now() - timedelta(days=YEAR_DAYS)
        count = Article.objects.filter(
            status=Article.Status.PUBLISHED, pub_date__lt=cutoff
        ).update(status=Article.Status.ARCHIVED)
        self.message_user(request, ngettext(
            "Archived %(count)d article published over a year ago.",
            "Archived %(count)d articles published over a year ago.", count,
        ) % {"count": count}, messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:parameters_article_changelist"))
