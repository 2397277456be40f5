"""The desk: the lending desk's own admin site, with one export for every model on it.

An action added to Django's default site would reach every model of the project; on a site
of its own it reaches only the models registered there. The desk's loans also take a
parameter in the action bar (postpone by the days typed) and have a button that needs no
selection (renew every loan due by tomorrow).
"""

import json
from datetime import timedelta
from itertools import batched

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import ActionLocation, helpers
from django.core.exceptions import PermissionDenied
from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import F
from django.http import HttpResponseNotAllowed, HttpResponseRedirect, StreamingHttpResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy, ngettext

from .models import Book, Loan, Member

BATCH_SIZE = 2000
LONGEST_POSTPONEMENT = 30  # days
RENEWAL = timedelta(days=14)

desk = admin.AdminSite(name="desk")
desk.site_header = "Lending desk"


@admin.action(description="Export selected %(verbose_name_plural)s as JSON Lines")
def export_as_json_lines(modeladmin, request, queryset):
    """Stream the selected rows of any model as JSON Lines: one object per row, one key per
    concrete field, read in chunks and sent a batch of lines at a time."""
    opts = modeladmin.model._meta
    # attname is "member_id" for a foreign key: the key itself, with no join.
    names = [field.attname for field in opts.concrete_fields]
    rows = queryset.values_list(*names).iterator(chunk_size=BATCH_SIZE)
    # DjangoJSONEncoder writes dates and times in ISO 8601.
    lines = (json.dumps(dict(zip(names, row)), cls=DjangoJSONEncoder) + "\n" for row in rows)
    pieces = ("".join(batch) for batch in batched(lines, BATCH_SIZE))
    response = StreamingHttpResponse(pieces, content_type="application/x-ndjson")
    filename = f"{opts.app_label}.{opts.model_name}.jsonl"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


desk.add_action(export_as_json_lines)


@admin.register(Book, site=desk)
class BookDeskAdmin(admin.ModelAdmin):
    list_display = ["title", "isbn"]
    search_fields = ["title", "isbn"]


class DaysBar(helpers.ActionForm):
    """The loans' action bar, with a number of days. Django validates the bar's whole form
    before it runs any action of it, the export too, and answers only "No action selected."
    when the form is invalid: so the field here takes anything, and the action that needs
    it checks it."""

    days = forms.CharField(required=False, widget=forms.NumberInput)


class DaysForm(forms.Form):
    """What postpone_loans accepts: a whole number of days, 1 to 30, or the reason why not."""

    days = forms.IntegerField(min_value=1, max_value=LONGEST_POSTPONEMENT, error_messages={
        "required": gettext_lazy("Type how many days to postpone the loans by.")})


def posted_days(request):
    """(days, None) as typed in the action bar, or (None, why not). The bar of a loan's own
    page posts its fields with the CHANGE_FORM- prefix, the changelist's without one."""
    prefix = ActionLocation.CHANGE_FORM.value
    form = DaysForm(request.POST, prefix=prefix if f"{prefix}-action" in request.POST else None)
    if form.is_valid():
        return form.cleaned_data["days"], None
    return None, form.errors["days"][0]


@admin.register(Loan, site=desk)
class LoanDeskAdmin(admin.ModelAdmin):
    list_display = ["book", "member", "due_on", "status"]
    list_filter = ["status"]
    action_form = DaysBar
    actions = ["postpone_loans"]
    # The changelist with the "Renew all due by tomorrow" button.
    change_list_template = "admin/lending/loan/desk_change_list.html"

    @admin.action(permissions=["change"], description=gettext_lazy("Postpone by the days typed"),
                  location=[ActionLocation.CHANGE_LIST, ActionLocation.CHANGE_FORM])
    def postpone_loans(self, request, queryset):
        """Move the due date of the selected loans still out by the days typed in the bar, in
        one UPDATE, on the changelist and on a loan's own page alike."""
        days, why = posted_days(request)
        if days is None:
            self.message_user(request, why, messages.ERROR)
            return
        count = queryset.filter(status=Loan.Status.LENT).update(
            due_on=F("due_on") + timedelta(days=days))
        self.message_user(request, ngettext(
            "%(count)d loan is now due %(days)d days later.",
            "%(count)d loans are now due %(days)d days later.", count,
        ) % {"count": count, "days": days}, messages.SUCCESS)

    def get_urls(self):
        # First: the admin's own end with "<path:object_id>/", which would take this one.
        return [path("renew-due/", self.admin_site.admin_view(self.renew_due),
                     name="lending_loan_renew_due"), *super().get_urls()]

    def renew_due(self, request):
        """The changelist's button: every loan still out and due by tomorrow, renewed for two
        weeks in one UPDATE. admin_view sends anyone not logged in to the login page and
        checks the CSRF token; the method and the permission are this view's to check."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_change_permission(request):
            raise PermissionDenied
        tomorrow = timezone.localdate() + timedelta(days=1)
        count = Loan.objects.filter(status=Loan.Status.LENT, due_on__lte=tomorrow).update(
            due_on=F("due_on") + RENEWAL)
        self.message_user(request, ngettext(
            "%(count)d loan due by tomorrow was renewed.",
            "%(count)d loans due by tomorrow were renewed.", count,
        ) % {"count": count}, messages.SUCCESS)
        return HttpResponseRedirect(reverse("desk:lending_loan_changelist"))


@admin.register(Member, site=desk)
class MemberDeskAdmin(admin.ModelAdmin):
    list_display = ["name", "joined_on"]
    search_fields = ["name"]

    def get_actions(self, request, action_location=ActionLocation.CHANGE_LIST):
        """Members are personal data: the desk's export must not take them off site."""
        actions = super().get_actions(request, action_location)
        actions.pop("export_as_json_lines", None)
        return actions
