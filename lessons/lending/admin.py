"""The lending desk in Django's admin: the worked example of every lesson.

Loans can be renewed in one UPDATE and their borrowers reminded by email; members' loan
figures can be exported as CSV, and members anonymised once a page listing them has been
confirmed. A loan's own page marks it returned, and a member's page starts a new loan.
Loans can be extended by as many days as a clerk types on a page of its own: with their rows
locked, a history entry each and a mail to each member once committed, and in the worker's
background when the selection is too big for a request.
"""

import csv
import hashlib
from datetime import timedelta
from functools import partial
from itertools import chain, groupby
from operator import attrgetter

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin import ActionLocation, helpers
from django.contrib.admin.models import CHANGE, LogEntry
from django.core import signing
from django.core.exceptions import ValidationError
from django.core.mail import EmailMessage, mailers
from django.core.validators import validate_email
from django.db import router, transaction
from django.db.models import CharField, Count, F, Q, Value
from django.db.models.functions import Cast, Coalesce, Concat
from django.http import HttpResponseRedirect, StreamingHttpResponse
from django.tasks import task
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.http import urlencode
from django.utils import timezone
from django.utils.crypto import constant_time_compare
from django.utils.translation import gettext, ngettext

# Imported with the admin, so the desk's models are registered and checked at startup.
from . import sites  # noqa: F401
from .models import Loan, Member

RENEWAL = timedelta(days=14)
BATCH_SIZE = 2000
ANONYMISE_TEMPLATE = "admin/lending/member/anonymise_confirmation.html"
LISTING_FIELD = "listing"
# The books a member has not brought back, counted by the database.
OPEN_LOANS = Count("loans", filter=Q(loans__status=Loan.Status.LENT))
EXTEND_TEMPLATE = "admin/lending/loan/extend_loans.html"
# The extension page names this many loans and counts the rest: small at any selection.
NAMED_ON_PAGE = 10
NOTHING_TO_EXTEND = (
    "No loans were extended: the selected loans were deleted or no longer match the filters."
)


class Echo:
    """A file that hands back what it is given: csv.writer's writerow() then returns the
    row's CSV text instead of storing it (the recipe of Django's "How to create CSV
    output")."""

    def write(self, text):
        return text


def is_deliverable(address):
    """Whether Django's EmailValidator accepts the address (a blank one it refuses).

    Checked before the first email leaves: an address with a line break makes building its
    email raise, halfway through the batch.
    """
    try:
        validate_email(address)
        return True
    except ValidationError:
        return False


def reminder(name, address, loans):
    """The one email a member gets, however many of their loans are overdue."""
    books = "".join(f"- {title}, due on {due_on.isoformat()}\n" for title, due_on in loans)
    return EmailMessage(
        subject="Overdue books",
        body=f"Dear {name},\n\nPlease bring back:\n{books}",
        to=[address],
    )


def renewal_report(renewed, returned):
    """The messages for the user, as (level, text): the loans renewed, the loans left alone
    because they were back, and the truth when the selection held neither."""
    if renewed:
        yield messages.SUCCESS, ngettext(
            "%(count)d loan was renewed.", "%(count)d loans were renewed.", renewed
        ) % {"count": renewed}
    if returned:
        yield messages.WARNING, ngettext(
            "%(count)d selected loan was already returned and was not renewed.",
            "%(count)d selected loans were already returned and were not renewed.",
            returned,
        ) % {"count": returned}
    if not renewed and not returned:
        yield messages.WARNING, gettext(
            "No loans were renewed: the selected loans were deleted or no longer match the "
            "filters."
        )


def reminder_report(reminded, skipped):
    """The messages for the user, as (level, text): who was reminded, who could not be."""
    if reminded:
        yield messages.SUCCESS, ngettext(
            "A reminder was sent to %(count)d member.",
            "Reminders were sent to %(count)d members.",
            reminded,
        ) % {"count": reminded}
    if skipped:
        yield messages.WARNING, ngettext(
            "%(count)d member has no valid email address and was not reminded.",
            "%(count)d members have no valid email address and were not reminded.",
            skipped,
        ) % {"count": skipped}
    if not reminded and not skipped:
        yield messages.WARNING, gettext(
            "No reminders were sent: none of the selected loans is overdue."
        )


def listing_digest(pks):
    """A signed digest of the members a confirmation page lists: the same for the same
    set, short for any number, and only this site (the salt: only this action) makes it."""
    fingerprint = hashlib.sha256(",".join(map(str, sorted(pks))).encode()).hexdigest()
    return signing.Signer(salt="lending.MemberAdmin.anonymise_members").sign(fingerprint)


def confirmation_fields(request, members):
    """The hidden fields of the confirmation form, as (name, value): what the changelist's
    form posted, so the second POST reaches the same action, and the signed listing.

    Under "select all" the URL's filters choose the rows: only the ticked rows go back, as
    one field per member would exceed DATA_UPLOAD_MAX_NUMBER_FIELDS on a big selection.
    """
    select_across = request.POST.get("select_across") == "1"
    if select_across:
        ticked = request.POST.getlist(helpers.ACTION_CHECKBOX_NAME)
    else:
        ticked = [member.pk for member in members]
    return [
        ("action", "anonymise_members"),
        ("index", request.POST.get("index", "0")),
        ("select_across", "1" if select_across else "0"),
        *[(helpers.ACTION_CHECKBOX_NAME, pk) for pk in ticked],
        (LISTING_FIELD, listing_digest(member.pk for member in members)),
    ]


class ExtensionForm(forms.Form):
    """What the clerk decides on the extension page: how long, and what to tell the members."""

    days = forms.IntegerField(label="Extend by (days)", min_value=1, max_value=28, initial=7)
    message = forms.CharField(
        label="Message to the members", required=False, max_length=300,
        widget=forms.Textarea(attrs={"rows": 2}),
    )


def inline_limit():
    """How many loans the desk extends while the clerk waits; more go to the worker."""
    return getattr(settings, "LENDING_INLINE_LIMIT", 200)


def extension_fields(request, selected):
    """The hidden fields that bring the extension page's POST back to extend_loans, as
    (name, value): what the changelist posted, and a field per loan only without "select
    all", where the URL's filters choose the loans again."""
    select_across = request.POST.get("select_across") == "1"
    ticked = request.POST.getlist(helpers.ACTION_CHECKBOX_NAME) if select_across else selected
    return [
        ("action", "extend_loans"),
        ("index", request.POST.get("index", "0")),
        ("select_across", "1" if select_across else "0"),
        *[(helpers.ACTION_CHECKBOX_NAME, pk) for pk in ticked],
    ]


def extension_notices(loans, days, message):
    """One email per member with a valid address, naming each extended book and the day it
    is due now. The loans were read, locked, before the UPDATE: their new date is theirs
    plus `days`."""
    notices = []
    by_member = groupby(sorted(loans, key=attrgetter("member_id")), key=attrgetter("member"))
    for member, books in by_member:
        if not is_deliverable(member.email):
            continue
        lines = "".join(
            f"- {loan.book.title}, now due on {(loan.due_on + timedelta(days=days)).isoformat()}\n"
            for loan in books
        )
        body = f"Dear {member.name},\n\nYou may keep these books {days} days longer:\n{lines}"
        if message:
            body += f"\n{message}\n"
        notices.append(EmailMessage(subject="More time for your books", body=body,
                                    to=[member.email]))
    return notices


def send_notices(notices):
    """Every notice over one connection: one backend, one send_messages()."""
    if notices:
        mailers.default.send_messages(notices)


@task
def extend_lent_loans(loan_pks, days, message, clerk_id):
    """Move the due date of the loans among `loan_pks` still out `days` later, record the
    clerk in their history, and mail their members once that is committed.

    The request calls it for a small selection, the worker (db_worker) for a queued one:
    the same work, the same guarantees. Only JSON goes in and out: keys, numbers, text.
    """
    db = router.db_for_write(Loan)
    with transaction.atomic(using=db):
        # Locked until the commit, always in the same order: a second clerk's extension
        # waits, then reads the dates this one wrote; a return waits too.
        loans = list(
            Loan.objects.using(db).select_related("member", "book")
            .filter(pk__in=loan_pks, status=Loan.Status.LENT).order_by("pk")
            .select_for_update(of=["self"])
        )
        Loan.objects.using(db).filter(pk__in=[loan.pk for loan in loans]).update(
            due_on=F("due_on") + timedelta(days=days)
        )
        if loans:
            LogEntry.objects.log_actions(
                user_id=clerk_id,
                queryset=loans,
                action_flag=CHANGE,
                change_message=f"Extended by {days} days.",
            )
        # Mailed after the commit, or not at all. A mail server failing then cannot undo
        # the new dates: robust=True logs its error instead of raising it.
        notices = extension_notices(loans, days, message)
        transaction.on_commit(partial(send_notices, notices), using=db, robust=True)
    return {"extended": len(loans), "not_out": len(loan_pks) - len(loans)}


def extension_report(done):
    """The messages for the clerk, as (level, text): the loans extended, the selected loans
    that were not out any more, and the truth when there was neither."""
    extended, not_out = done["extended"], done["not_out"]
    if extended:
        yield messages.SUCCESS, ngettext(
            "%(count)d loan was extended.", "%(count)d loans were extended.", extended
        ) % {"count": extended}
    if not_out:
        yield messages.WARNING, ngettext(
            "%(count)d selected loan is not out any more and was not extended.",
            "%(count)d selected loans are not out any more and were not extended.",
            not_out,
        ) % {"count": not_out}
    if not extended and not not_out:
        yield messages.WARNING, NOTHING_TO_EXTEND


@admin.register(Loan)
class LoanAdmin(admin.ModelAdmin):
    list_display = ["book", "member", "lent_on", "due_on", "renewed_on", "status"]
    list_filter = ["status"]
    search_fields = ["book__title", "member__name"]
    actions = ["renew_loans", "send_overdue_reminders", "mark_returned", "extend_loans"]

    def get_actions(self, request, action_location=ActionLocation.CHANGE_LIST):
        """No renewals on the list of returned loans: none of them could be renewed.

        Django asks on every changelist page and every action POST, so the answer reads
        the query string only: cheap, the same for the same request, and changes nothing.
        """
        # Django 6.1 asks for changelist and change-form actions apart: pass the location on.
        actions = super().get_actions(request, action_location)
        if request.GET.get("status__exact") == Loan.Status.RETURNED:
            actions.pop("renew_loans", None)
        return actions

    def has_remind_permission(self, request):
        """Asked by Django for the actions declared with permissions=["remind"]."""
        return request.user.has_perm(f"{self.opts.app_label}.send_reminders")

    @admin.action(permissions=["change"], description="Renew selected loans for two weeks")
    def renew_loans(self, request, queryset):
        """Move the due date of the selected loans still out two weeks later, in one UPDATE,
        and report the selected loans that were already back as well.

        Returned loans are left out, so the count update() returns is the loans renewed.
        """
        renewed = queryset.filter(status=Loan.Status.LENT).update(
            due_on=F("due_on") + RENEWAL,
            renewed_on=Coalesce("renewed_on", Value(timezone.localdate())),
        )
        # The desk reports the loans it left alone on every run: it always costs a COUNT.
        returned = queryset.filter(status=Loan.Status.RETURNED).count()
        for level, text in renewal_report(renewed, returned):
            self.message_user(request, text, level)

    @admin.action(permissions=["remind"], description="Email reminders for overdue loans")
    def send_overdue_reminders(self, request, queryset):
        """Email each member with an overdue loan of the selection once, listing them all.

        One query reads every overdue loan with its member, sorted so that a member's loans
        come together; every address is checked before the first email leaves.
        """
        overdue = (
            queryset.filter(status=Loan.Status.LENT, due_on__lt=timezone.localdate())
            # member_id, not member: that would sort by Member.Meta.ordering, the name.
            .order_by("member_id", "due_on")
            .values_list("member_id", "member__name", "member__email", "book__title", "due_on")
        )
        emails, skipped = [], 0
        for (_, name, address), loans in groupby(overdue, key=lambda row: row[:3]):
            if is_deliverable(address):
                emails.append(reminder(name, address, [row[3:] for row in loans]))
            else:
                skipped += 1
        # One backend, one send_messages(): one connection for the whole batch.
        reminded = mailers.default.send_messages(emails) if emails else 0
        for level, text in reminder_report(reminded, skipped):
            self.message_user(request, text, level)

    @admin.action(
        permissions=["change"],
        description="Mark this loan as returned",
        description_plural="Mark selected loans as returned",
        location=[ActionLocation.CHANGE_LIST, ActionLocation.CHANGE_FORM],
    )
    def mark_returned(self, request, queryset):
        """Record the books as back today, and in each loan's history who took it back.

        The same function serves the changelist (the ticked loans) and a loan's own page
        (that loan). The change page runs it in a transaction and the changelist does not,
        so the desk opens its own: the loans and their history are saved together or not at
        all, on both pages.
        """
        with transaction.atomic(using=router.db_for_write(Loan)):
            # Locked until the commit (SQLite ignores it): a second clerk's return waits.
            # In primary-key order, as every lock of the desk: the changelist's queryset is
            # sorted by the list's columns, and two orders of the same rows can deadlock.
            loans = list(
                queryset.filter(status=Loan.Status.LENT).order_by("pk")
                .select_for_update(of=["self"])
            )
            Loan.objects.filter(pk__in=[loan.pk for loan in loans]).update(
                status=Loan.Status.RETURNED, returned_on=timezone.localdate()
            )
            if loans:
                LogEntry.objects.log_actions(
                    user_id=request.user.pk,
                    queryset=loans,
                    action_flag=CHANGE,
                    change_message=[{"changed": {"fields": ["Status", "Returned on"]}}],
                )
        if loans:
            text = ngettext(
                "%(count)d loan is back on the shelf.", "%(count)d loans are back on the shelf.",
                len(loans),
            ) % {"count": len(loans)}
            self.message_user(request, text, messages.SUCCESS)
        else:
            # Nothing went wrong: the desk had recorded the return already.
            self.message_user(request, gettext("Nothing to record: already returned."),
                              messages.INFO)

    @admin.action(permissions=["change"], description="Extend selected loans")
    def extend_loans(self, request, queryset):
        """Give the selected loans still out the days the clerk chose on a page of its own,
        and mail their members once it is done.

        The first POST only shows the page; its "extend" button posts the form back. Too
        big a selection for one request is queued, and the worker does the same work.
        """
        form = ExtensionForm(request.POST if "extend" in request.POST else None)
        if not form.is_valid():  # unbound on the first POST: the page, with no errors
            return self.extension_page(request, queryset, form)
        # Extending is harmless and can be undone by hand: whatever is selected now.
        selected = list(queryset.values_list("pk", flat=True))
        work = (selected, form.cleaned_data["days"], form.cleaned_data["message"],
                request.user.pk)
        if len(selected) > inline_limit():
            # After the request's own transaction commits, if it runs in one.
            transaction.on_commit(partial(extend_lent_loans.enqueue, *work),
                                  using=router.db_for_write(Loan))
            self.message_user(request, ngettext(
                "%(count)d loan was queued for an extension: the worker extends it if it "
                "is still out, and mails its member.",
                "%(count)d loans were queued for an extension: the worker extends those "
                "still out, and mails their members.",
                len(selected),
            ) % {"count": len(selected)}, messages.INFO)
            return None
        for level, text in extension_report(extend_lent_loans.call(*work)):
            self.message_user(request, text, level)
        return None

    def extension_page(self, request, queryset, form):
        """The page that asks for how many days, names a few of the loans and counts the
        rest, in the same few queries for 3 loans or 30,000."""
        selected = list(queryset.values_list("pk", flat=True))
        if not selected:
            self.message_user(request, NOTHING_TO_EXTEND, messages.WARNING)
            return None
        out = queryset.filter(status=Loan.Status.LENT).count()
        context = {
            **self.admin_site.each_context(request),
            "title": gettext("Extend these loans?"),
            "opts": self.opts,
            "extension_form": form,
            "named": queryset.select_related("member", "book")[:NAMED_ON_PAGE],
            "unnamed": max(len(selected) - NAMED_ON_PAGE, 0),
            "out": out,
            "back": len(selected) - out,
            "queued": len(selected) > inline_limit(),
            "hidden_fields": extension_fields(request, selected),
            "back_url": request.get_full_path(),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, EXTEND_TEMPLATE, context)


@admin.register(Member)
class MemberAdmin(admin.ModelAdmin):
    list_display = ["name", "email", "joined_on"]
    search_fields = ["name", "email"]
    actions = ["export_members", "anonymise_members", "lend_a_book"]

    def has_lend_permission(self, request):
        """Asked for permissions=["lend"]. The action is offered on the change form only, so
        no system check notices when this method is missing: every member's page fails."""
        return request.user.has_perm(f"{self.opts.app_label}.add_loan")

    @admin.action(
        permissions=["lend"],
        description="Lend this member a book",
        location=ActionLocation.CHANGE_FORM,
    )
    def lend_a_book(self, request, queryset):
        """Open the loan form with this member filled in: an action may answer with any page.

        It changes nothing itself; the add page checks its own permission when it saves.
        """
        member = queryset.get()  # on the change form: exactly the member the page shows
        url = reverse("admin:lending_loan_add", current_app=self.admin_site.name)
        initial = urlencode({"member": member.pk, "lent_on": timezone.localdate()})
        return HttpResponseRedirect(f"{url}?{initial}")

    @admin.action(description="Export the loan figures of selected members as CSV")
    def export_members(self, request, queryset):
        """Stream each selected member's number, day of joining and books out as CSV, a row
        at a time.

        No name and no address: the figures leave the desk without personal data, so every
        cell is a number or a date the code writes, never text someone typed. One query,
        whatever the selection: annotate() counts the open loans in it, and iterator() reads
        its rows in chunks instead of all at once.
        """
        rows = (
            queryset.annotate(open_loans=OPEN_LOANS)
            .values_list("pk", "joined_on", "open_loans")
            .iterator(chunk_size=BATCH_SIZE)
        )
        cells = (
            (number, joined_on.isoformat(), open_loans)
            for number, joined_on, open_loans in rows
        )
        writer = csv.writer(Echo())
        header = ["Member number", "Joined on", "Open loans"]
        # One piece of the file per row: the desk's few hundred members need no more.
        lines = (writer.writerow(row) for row in chain([header], cells))
        response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="member-figures.csv"'
        return response

    @admin.action(permissions=["change"], description="Anonymise selected members")
    def anonymise_members(self, request, queryset):
        """Replace the selected members' names and email addresses, once confirmed.

        It cannot be undone, so the first POST only shows a page listing the members; that
        page's "confirm" goes ahead only if the selection is still exactly what it listed.
        """
        if "confirm" not in request.POST:
            return self.anonymise_confirmation(request, queryset)
        # Under "select all" the queryset was rebuilt from the URL's filters just now.
        selected_now = list(queryset.values_list("pk", flat=True))
        listed = request.POST.get(LISTING_FIELD, "")
        if not constant_time_compare(listed, listing_digest(selected_now)):
            return self.ask_again(request, queryset, gettext(
                "Nothing was anonymised: the selection is no longer the list you confirmed. "
                "Check the members below and confirm again."
            ))
        anonymised = self.anonymise(request, selected_now)
        if anonymised is None:
            return self.ask_again(request, queryset, gettext(
                "Nothing was anonymised: a selected member has borrowed a book since."
            ))
        message = ngettext(
            "%(count)d member was anonymised.", "%(count)d members were anonymised.", anonymised
        ) % {"count": anonymised}
        self.message_user(request, message, messages.SUCCESS)

    def ask_again(self, request, queryset, reason):
        """Say why nothing was done, and show the page again for the members selected now."""
        self.message_user(request, reason, messages.WARNING)
        return self.anonymise_confirmation(request, queryset)

    def anonymise(self, request, pks):
        """Anonymise these members and log it in their history, all or nothing; None,
        changing nothing, if one of them has a book out."""
        members = self.model.objects.filter(pk__in=pks)
        with transaction.atomic(using=router.db_for_write(self.model)):
            # Lock the members (SQLite ignores it): a loan made to one waits for the commit.
            # In primary-key order, not the members' own (by name), as every lock of the desk.
            list(members.order_by("pk").select_for_update().values_list("pk"))
            if members.filter(loans__status=Loan.Status.LENT).exists():
                return None
            anonymised = members.update(
                name=Concat(Value("Former member #"), Cast("pk", CharField())), email=""
            )
            # Logged after the UPDATE, so the history keeps the placeholder, not the name.
            LogEntry.objects.log_actions(
                user_id=request.user.pk,
                queryset=members,
                action_flag=CHANGE,
                change_message="Anonymised: name and email address replaced.",
            )
        return anonymised

    def anonymise_confirmation(self, request, queryset):
        """The page that lists the members and asks "are you sure?", or names those who
        still have books out and offers no "Yes"."""
        members = list(queryset.annotate(open_loans=OPEN_LOANS))
        if not members:
            self.message_user(request, gettext(
                "Nothing was anonymised: the selected members were deleted or no longer "
                "match the filters."
            ), messages.WARNING)
            return None
        borrowing = [member for member in members if member.open_loans]
        if borrowing:
            title = gettext("Cannot anonymise these members")
        else:
            title = gettext("Anonymise these members?")
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "opts": self.opts,
            "members": members,
            "borrowing": borrowing,
            "hidden_fields": confirmation_fields(request, members),
            # The changelist the user came from, its filters and search kept.
            "back_url": request.get_full_path(),
        }
        # The admin's {% url %} tags then resolve on this admin site.
        request.current_app = self.admin_site.name
        return TemplateResponse(request, ANONYMISE_TEMPLATE, context)
