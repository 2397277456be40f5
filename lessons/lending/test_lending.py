"""The worked example's own tests: every lending-desk action, driven through the admin.

Not graded (no task markers): they prove that the code the lessons show does what the
lessons say. Run them with `pytest lessons`.
"""

import hashlib
import json
import signal
import threading
from datetime import date, timedelta

import pytest
from django.contrib import admin
from django.contrib.admin import ActionLocation
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core import signing
from django.contrib.messages.storage.fallback import FallbackStorage
from django.core import mail
from django.core.mail.backends.base import BaseEmailBackend
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.db.transaction import TransactionManagementError
from django.tasks import task
from django.tasks.exceptions import InvalidTask
from django.test import Client, RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.deprecation import RemovedInDjango2028Warning
from django_tasks_db.models import DBTaskResult

from workbook.testing import (
    RecordingEmailBackend,
    change_form_actions,
    change_page,
    change_url,
    changelist_url,
    choose_action,
    content_of,
    create_staff,
    csv_rows,
    expect_well_formed,
    form_url,
    form_with_button,
    login_staff,
    messages_of,
    needs_row_locks,
    offered_actions,
    post_action,
    post_change_form_action,
    post_data,
    press,
    row_held,
    run_on_change_page,
    submit_form,
    wait_for_lock_waiters,
    Clerk,
)

from .admin import LoanAdmin, extend_lent_loans, listing_digest
from .models import Book, Loan, Member

LENT, RETURNED = Loan.Status.LENT, Loan.Status.RETURNED
TEMPLATE = "admin/lending/member/anonymise_confirmation.html"

pytestmark = pytest.mark.django_db


def today():
    return timezone.localdate()


def make_members(count, email="member{i}@example.com", name="Member {i}"):
    return Member.objects.bulk_create(
        Member(name=name.format(i=i), email=email.format(i=i), joined_on=date(2024, 1, i % 28 + 1))
        for i in range(1, count + 1)
    )


def make_loans(members, due_in_days=7, status=LENT, **fields):
    """One loan per member, due `due_in_days` from today (negative: overdue)."""
    book = Book.objects.create(title="Middlemarch", isbn="9780141439549")
    due_on = today() + timedelta(days=due_in_days)
    return Loan.objects.bulk_create(
        Loan(book=book, member=member, lent_on=due_on - timedelta(days=21), due_on=due_on,
             status=status, **fields)
        for member in members
    )


def staff(django_user_model, *codenames, username="staff"):
    client = Client()
    login_staff(client, django_user_model, *[f"lending.{c}" for c in codenames],
                username=username)
    return client


def queries_of(run):
    with CaptureQueriesContext(connection) as captured:
        run()
    return len(captured)


def pks(rows):
    return [row.pk for row in rows]


# renew_loans: one UPDATE, F() and Coalesce, messages and levels


def test_renew_moves_due_dates_of_loans_still_out_and_keeps_a_first_renewal(admin_client):
    first_renewal = date(2025, 3, 1)
    fresh, renewed_before = make_loans(make_members(2))
    Loan.objects.filter(pk=renewed_before.pk).update(renewed_on=first_renewal)
    returned = make_loans(make_members(1), status=RETURNED, returned_on=today())[0]

    selected = [fresh, renewed_before, returned]

    with CaptureQueriesContext(connection) as queries:
        response = post_action(admin_client, Loan, "renew_loans", pks(selected))

    assert messages_of(response) == [
        ("success", "2 loans were renewed."),
        ("warning", "1 selected loan was already returned and was not renewed."),
    ]
    updates = [q["sql"] for q in queries if q["sql"].startswith('UPDATE "lending_loan"')]
    assert len(updates) == 1
    for loan in selected:
        loan.refresh_from_db()
    assert fresh.due_on == today() + timedelta(days=21)
    assert fresh.renewed_on == today()
    assert renewed_before.renewed_on == first_renewal
    assert returned.due_on == today() + timedelta(days=7) and returned.renewed_on is None


def test_renew_says_one_loan_in_the_singular(admin_client):
    loan = make_loans(make_members(1))[0]

    response = post_action(admin_client, Loan, "renew_loans", [loan.pk])

    assert messages_of(response) == [("success", "1 loan was renewed.")]


@pytest.mark.parametrize("count, text", [
    (1, "1 selected loan was already returned and was not renewed."),
    (3, "3 selected loans were already returned and were not renewed."),
])
def test_renew_warns_when_every_selected_loan_was_returned(admin_client, count, text):
    loans = make_loans(make_members(count), status=RETURNED, returned_on=today())

    response = post_action(admin_client, Loan, "renew_loans", pks(loans))

    assert messages_of(response) == [("warning", text)]
    assert not Loan.objects.exclude(renewed_on=None).exists()


def test_renew_says_so_when_the_selected_loans_are_gone(admin_client):
    loans = make_loans(make_members(2))
    Loan.objects.all().delete()

    response = post_action(admin_client, Loan, "renew_loans", pks(loans))

    assert messages_of(response) == [("warning", "No loans were renewed: the selected loans "
                                      "were deleted or no longer match the filters.")]


def test_renew_runs_as_many_queries_for_40_loans_as_for_1(admin_client, django_assert_num_queries):
    loans = make_loans(make_members(41))
    one = queries_of(lambda: post_action(admin_client, Loan, "renew_loans", [loans[0].pk],
                                         follow=False))

    with django_assert_num_queries(one):
        post_action(admin_client, Loan, "renew_loans", pks(loans[1:]), follow=False)
    assert Loan.objects.filter(renewed_on=today()).count() == 41


def test_a_view_only_user_is_offered_no_action_and_a_forged_post_changes_nothing(
    django_user_model,
):
    reader = staff(django_user_model, "view_loan")
    loan = make_loans(make_members(1))[0]

    assert offered_actions(reader, Loan) == {}
    post_action(reader, Loan, "renew_loans", [loan.pk])

    assert Loan.objects.get().renewed_on is None


def test_a_user_who_may_not_change_loans_cannot_renew_them_even_by_a_forged_post(
    django_user_model,
):
    # With no action at all, Django would not even look at the POST: give them one.
    reader = staff(django_user_model, "view_loan", "send_reminders")
    loan = make_loans(make_members(1))[0]

    assert "renew_loans" not in offered_actions(reader, Loan)
    response = post_action(reader, Loan, "renew_loans", [loan.pk])

    assert messages_of(response) == [("warning", "No action selected.")]
    assert Loan.objects.get().renewed_on is None


def test_the_list_of_returned_loans_offers_no_renewal(admin_client):
    returned = make_loans(make_members(1), status=RETURNED, returned_on=today())[0]

    assert "renew_loans" in offered_actions(admin_client, Loan)
    assert "renew_loans" in offered_actions(admin_client, Loan, "status__exact=lent")
    offered = offered_actions(admin_client, Loan, "status__exact=returned")
    assert "renew_loans" not in offered and "send_overdue_reminders" in offered
    response = post_action(admin_client, Loan, "renew_loans", [returned.pk],
                           query="status__exact=returned")
    assert messages_of(response) == [("warning", "No action selected.")]


def test_get_actions_takes_the_action_location_so_django_does_not_warn(admin_client, recwarn):
    loan = make_loans(make_members(1))[0]

    assert admin_client.get(changelist_url(Loan)).status_code == 200
    change_form = reverse("admin:lending_loan_change", args=[loan.pk])
    assert admin_client.get(change_form).status_code == 200

    assert not [w for w in recwarn if "action_location" in str(w.message)]


# send_overdue_reminders: a permission of its own, one email per member, one batch


@pytest.fixture
def desk_clerk(django_user_model):
    return staff(django_user_model, "view_loan", "send_reminders", username="clerk")


def test_each_member_gets_one_reminder_listing_all_their_overdue_books(desk_clerk, mailoutbox):
    ada, bob = make_members(2)
    overdue = make_loans([ada, bob], due_in_days=-3) + make_loans([ada], due_in_days=-5)
    not_yet_due = make_loans([bob], due_in_days=3)
    returned = make_loans([bob], due_in_days=-3, status=RETURNED, returned_on=today())
    Book.objects.filter(pk=overdue[2].book_id).update(title="Persuasion")

    response = post_action(desk_clerk, Loan, "send_overdue_reminders",
                           pks(overdue + not_yet_due + returned))

    assert messages_of(response) == [("success", "Reminders were sent to 2 members.")]
    assert sorted(m.to for m in mailoutbox) == [["member1@example.com"], ["member2@example.com"]]
    to_ada = next(m for m in mailoutbox if m.to == ["member1@example.com"])
    assert to_ada.body == (
        "Dear Member 1,\n\nPlease bring back:\n"
        f"- Persuasion, due on {today() - timedelta(days=5)}\n"
        f"- Middlemarch, due on {today() - timedelta(days=3)}\n"
    )
    to_bob = next(m for m in mailoutbox if m.to == ["member2@example.com"])
    assert to_bob.body.count("- ") == 1


def test_members_of_the_same_name_get_one_reminder_each(desk_clerk, mailoutbox):
    first, second = make_members(2, name="Sam Smith")
    loans = [*make_loans([first, second], due_in_days=-4),
             *make_loans([first, second], due_in_days=-2)]

    post_action(desk_clerk, Loan, "send_overdue_reminders", pks(loans))

    assert sorted(m.to[0] for m in mailoutbox) == ["member1@example.com", "member2@example.com"]
    assert all(m.body.count("- Middlemarch") == 2 for m in mailoutbox)


@pytest.mark.parametrize("emails, text", [
    ([""], "1 member has no valid email address and was not reminded."),
    (["", "not an address", "x@example.com\nBcc: y@example.com"],
     "3 members have no valid email address and were not reminded."),
])
def test_members_without_a_valid_address_are_counted_not_emailed(
    desk_clerk, mailoutbox, emails, text
):
    members = make_members(len(emails) + 1)
    for member, email in zip(members, emails):
        Member.objects.filter(pk=member.pk).update(email=email)
    loans = make_loans(members, due_in_days=-1)

    response = post_action(desk_clerk, Loan, "send_overdue_reminders", pks(loans))

    assert messages_of(response) == [("success", "A reminder was sent to 1 member."),
                                     ("warning", text)]
    assert [m.to for m in mailoutbox] == [[f"member{len(members)}@example.com"]]


def test_no_reminder_when_no_selected_loan_is_overdue(desk_clerk, mailoutbox):
    loans = make_loans(make_members(2), due_in_days=0)

    response = post_action(desk_clerk, Loan, "send_overdue_reminders", pks(loans))

    assert messages_of(response) == [
        ("warning", "No reminders were sent: none of the selected loans is overdue.")
    ]
    assert not mailoutbox


def test_every_reminder_leaves_in_one_send_messages_batch(desk_clerk, settings, mailoutbox):
    settings.MAILERS = {"default": {"BACKEND": "workbook.testing.RecordingEmailBackend"}}
    RecordingEmailBackend.batches = []
    loans = make_loans(make_members(5), due_in_days=-1)

    post_action(desk_clerk, Loan, "send_overdue_reminders", pks(loans))

    assert [count for _, count in RecordingEmailBackend.batches] == [5]


def test_reminders_run_as_many_queries_for_30_members_as_for_1(
    desk_clerk, mailoutbox, django_assert_num_queries
):
    loans = make_loans(make_members(31), due_in_days=-1)
    one = queries_of(lambda: post_action(desk_clerk, Loan, "send_overdue_reminders",
                                         [loans[0].pk], follow=False))

    with django_assert_num_queries(one):
        post_action(desk_clerk, Loan, "send_overdue_reminders", pks(loans[1:]), follow=False)
    assert len(mailoutbox) == 31


def test_only_users_who_may_send_reminders_are_offered_them(django_user_model, mailoutbox):
    librarian = staff(django_user_model, "view_loan", "change_loan")
    loans = make_loans(make_members(1), due_in_days=-1)

    assert list(offered_actions(librarian, Loan)) == [
        "renew_loans", "mark_returned", "extend_loans"]
    response = post_action(librarian, Loan, "send_overdue_reminders", pks(loans))

    assert messages_of(response) == [("warning", "No action selected.")]
    assert not mailoutbox


# export_members: a streamed CSV with a formula guard


def export(client, members, **options):
    return post_action(client, Member, "export_members", pks(members), **options)


def test_the_export_streams_each_members_loan_figures_and_no_personal_data(admin_client):
    ada, bob = make_members(2)
    Member.objects.filter(pk=ada.pk).update(email='=HYPERLINK("http://evil.example")')
    make_loans([ada, ada])
    make_loans([ada, bob], status=RETURNED, returned_on=today())

    response = export(admin_client, [ada, bob])

    assert response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="member-figures.csv"'
    assert csv_rows(response) == [
        ["Member number", "Joined on", "Open loans"],
        [str(ada.pk), "2024-01-02", "2"],
        [str(bob.pk), "2024-01-03", "0"],
    ]


def test_the_export_sends_the_header_and_each_member_as_a_piece_of_its_own(admin_client):
    members = make_members(5)

    response = export(admin_client, members)

    pieces = [piece.decode() for piece in response.streaming_content]
    assert pieces[0] == "Member number,Joined on,Open loans\r\n"
    assert len(pieces) == 6 and all(piece.count("\r\n") == 1 for piece in pieces)


def test_the_export_runs_as_many_queries_for_500_members_as_for_1(
    admin_client, django_assert_num_queries
):
    members = make_members(501)
    make_loans(members[:100])
    one = queries_of(lambda: content_of(export(admin_client, members[:1])))

    with django_assert_num_queries(one):
        content = content_of(export(admin_client, members[1:]))
    assert len(content.splitlines()) == 501


# anonymise_members: a confirmation page, a signed listing, one transaction


def ask(client, members, **options):
    """The first POST: the changelist's action form."""
    return post_action(client, Member, "anonymise_members", pks(members), follow=False,
                       **options)


def test_the_first_post_only_shows_a_page_listing_the_members(admin_client):
    members = make_members(2)

    page = ask(admin_client, members)

    assert page.status_code == 200
    assert TEMPLATE in [t.name for t in page.templates]
    assert "Member 1 &lt;member1@example.com&gt;" in page.content.decode()
    form = form_with_button(page, "confirm")
    fields = dict(form["fields"])
    assert fields["action"] == "anonymise_members" and fields["select_across"] == "0"
    assert sorted(v for n, v in form["fields"] if n == "_selected_action") == sorted(
        str(pk) for pk in pks(members))
    assert "csrfmiddlewaretoken" in fields and fields["listing"]
    assert list(Member.objects.values_list("name", flat=True)) == ["Member 1", "Member 2"]


def test_confirming_anonymises_and_writes_one_history_entry_per_member(admin_client):
    members = make_members(2)
    other = make_members(1, name="Other", email="other@example.com")[0]

    response = submit_form(admin_client, ask(admin_client, members), "confirm")

    assert messages_of(response) == [("success", "2 members were anonymised.")]
    assert list(Member.objects.filter(pk__in=pks(members)).values_list("name", "email")) == [
        (f"Former member #{members[0].pk}", ""), (f"Former member #{members[1].pk}", "")]
    assert Member.objects.get(pk=other.pk).name == "Other"
    entries = LogEntry.objects.order_by("object_id")
    assert [(e.object_id, e.action_flag, e.object_repr) for e in entries] == [
        (str(m.pk), CHANGE, f"Former member #{m.pk}") for m in members]


def test_one_member_is_anonymised_in_the_singular(admin_client):
    member = make_members(1)[0]

    response = submit_form(admin_client, ask(admin_client, [member]), "confirm")

    assert messages_of(response) == [("success", "1 member was anonymised.")]


def test_members_with_books_out_are_listed_and_nobody_can_confirm(admin_client):
    ada, bob = make_members(2)
    make_loans([ada, ada])

    page = ask(admin_client, [ada, bob])

    assert page.status_code == 200
    assert form_with_button(page, "confirm") is None
    assert "Member 1 (2 open loans)" in page.content.decode()
    assert "Member 2 (" not in page.content.decode()


def test_a_loan_made_after_the_page_was_shown_stops_the_confirmation(admin_client):
    member = make_members(1)[0]
    page = ask(admin_client, [member])
    make_loans([member])

    response = submit_form(admin_client, page, "confirm")

    assert ("warning", "Nothing was anonymised: a selected member has borrowed a book since.") \
        in messages_of(response)
    assert form_with_button(response, "confirm") is None
    assert Member.objects.get().name == "Member 1" and not LogEntry.objects.exists()


def test_a_member_deleted_after_the_page_was_shown_stops_the_confirmation(admin_client):
    ada, bob = make_members(2)
    page = ask(admin_client, [ada, bob])
    Member.objects.filter(pk=bob.pk).delete()

    response = submit_form(admin_client, page, "confirm")

    assert messages_of(response) == [("warning", (
        "Nothing was anonymised: the selection is no longer the list you confirmed. "
        "Check the members below and confirm again."))]
    assert Member.objects.get().name == "Member 1"
    # The page is shown again, for the members selected now: confirming it works.
    response = submit_form(admin_client, response, "confirm")
    assert messages_of(response) == [("success", "1 member was anonymised.")]


@pytest.mark.parametrize("listing", ["", "forged", "forged:signature"])
def test_a_forged_or_missing_listing_changes_nothing(admin_client, listing):
    member = make_members(1)[0]

    response = post_action(admin_client, Member, "anonymise_members", [member.pk],
                           confirm="yes", listing=listing)

    assert [level for level, _ in messages_of(response)] == ["warning"]
    assert Member.objects.get().name == "Member 1"


def test_a_listing_signed_for_other_rows_changes_nothing(admin_client):
    ada, bob = make_members(2)

    response = post_action(admin_client, Member, "anonymise_members", [ada.pk, bob.pk],
                           confirm="yes", listing=listing_digest([ada.pk]))

    assert [level for level, _ in messages_of(response)] == ["warning"]
    assert not Member.objects.filter(name__startswith="Former").exists()


def test_a_listing_signed_for_another_purpose_changes_nothing(admin_client):
    member = make_members(1)[0]
    fingerprint = hashlib.sha256(str(member.pk).encode()).hexdigest()
    assert listing_digest([member.pk]).startswith(fingerprint + ":")

    response = post_action(admin_client, Member, "anonymise_members", [member.pk],
                           confirm="yes", listing=signing.Signer().sign(fingerprint))

    assert [level for level, _ in messages_of(response)] == ["warning"]
    assert Member.objects.get().name == "Member 1"


def test_if_the_history_cannot_be_written_nobody_is_anonymised(admin_client, monkeypatch):
    members = make_members(2)
    page = ask(admin_client, members)

    def fail(**kwargs):
        raise RuntimeError("the history table is full")

    monkeypatch.setattr(LogEntry.objects, "log_actions", fail)
    with pytest.raises(RuntimeError):
        submit_form(admin_client, page, "confirm")

    assert list(Member.objects.values_list("name", flat=True)) == ["Member 1", "Member 2"]


def test_select_across_posts_only_the_ticked_rows_and_keeps_the_filters_in_the_url(
    admin_client,
):
    make_members(30)
    make_members(1, name="Zoe", email="zoe@example.com")
    ticked = Member.objects.filter(name__in=["Member 1", "Member 2"])

    page = ask(admin_client, ticked, select_across=True, query="q=Member")

    form = form_with_button(page, "confirm")
    assert sorted(v for n, v in form["fields"] if n == "_selected_action") == sorted(
        str(pk) for pk in pks(ticked))
    assert dict(form["fields"])["select_across"] == "1"
    assert page.content.decode().count("<li>Member ") == 30
    response = submit_form(admin_client, page, "confirm")
    assert messages_of(response) == [("success", "30 members were anonymised.")]
    assert list(Member.objects.exclude(name__startswith="Former").values_list("name", flat=True)) \
        == ["Zoe"]


def test_select_across_refuses_when_a_new_row_matches_the_filters(admin_client):
    make_members(3)
    page = ask(admin_client, Member.objects.all()[:1], select_across=True, query="q=Member")
    make_members(1, name="Member 4")

    response = submit_form(admin_client, page, "confirm")

    assert [level for level, _ in messages_of(response)] == ["warning"]
    assert not Member.objects.filter(name__startswith="Former").exists()


def test_a_view_only_user_cannot_anonymise_even_by_a_forged_post(django_user_model):
    # With no action at all, Django would not even look at the POST: give them the export.
    reader = staff(django_user_model, "view_member")
    member = make_members(1)[0]

    assert list(offered_actions(reader, Member)) == ["export_members"]
    response = post_action(reader, Member, "anonymise_members", [member.pk], confirm="yes",
                           listing=listing_digest([member.pk]))

    assert messages_of(response) == [("warning", "No action selected.")]
    assert Member.objects.get().name == "Member 1"


def test_confirming_runs_as_many_queries_for_30_members_as_for_1(
    admin_client, django_assert_num_queries
):
    ContentType.objects.get_for_model(Member)  # cached from now on, as in a running site
    members = make_members(31)
    first_page = ask(admin_client, members[:1])
    one = queries_of(lambda: submit_form(admin_client, first_page, "confirm", follow=False))

    page = ask(admin_client, members[1:])
    with django_assert_num_queries(one):
        submit_form(admin_client, page, "confirm", follow=False)
    assert Member.objects.filter(name__startswith="Former").count() == 31
    assert LogEntry.objects.count() == 31


# The desk: a site of its own, an export for every model, and a model that opts out


def test_the_desk_is_mounted_at_lending_desk():
    assert reverse("desk:index") == "/lending/desk/"


def test_the_desk_exports_loans_as_json_lines(admin_client):
    loan = make_loans(make_members(1), renewed_on=date(2025, 5, 6))[0]

    response = post_action(admin_client, Loan, "export_as_json_lines", [loan.pk], site="desk")

    assert response.streaming
    assert response["Content-Type"] == "application/x-ndjson"
    assert response["Content-Disposition"] == 'attachment; filename="lending.loan.jsonl"'
    lines = content_of(response).decode().splitlines()
    assert [json.loads(line) for line in lines] == [{
        "id": loan.pk, "book_id": loan.book_id, "member_id": loan.member_id,
        "lent_on": loan.lent_on.isoformat(), "due_on": loan.due_on.isoformat(),
        "returned_on": None, "renewed_on": "2025-05-06", "status": "lent",
    }]


def test_the_desk_export_knows_no_model_in_particular(admin_client):
    books = Book.objects.bulk_create([Book(title="Emma"), Book(title='"Quoted"\nTitle')])

    response = post_action(admin_client, Book, "export_as_json_lines", pks(books), site="desk")

    assert response["Content-Disposition"] == 'attachment; filename="lending.book.jsonl"'
    lines = content_of(response).decode().splitlines()
    assert sorted(json.loads(line)["title"] for line in lines) == ['"Quoted"\nTitle', "Emma"]


def test_members_opt_out_of_the_desk_export(admin_client):
    member = make_members(1)[0]

    assert "export_as_json_lines" in offered_actions(admin_client, Book, site="desk")
    assert "export_as_json_lines" not in offered_actions(admin_client, Member, site="desk")
    response = post_action(admin_client, Member, "export_as_json_lines", [member.pk],
                           site="desk")

    assert not response.streaming
    assert messages_of(response) == [("warning", "No action selected.")]


def test_the_default_admin_site_has_no_desk_export(admin_client):
    assert "export_as_json_lines" not in offered_actions(admin_client, Loan)


def test_the_desk_export_runs_as_many_queries_for_500_loans_as_for_1(
    admin_client, django_assert_num_queries
):
    loans = make_loans(make_members(501))
    one = queries_of(lambda: content_of(
        post_action(admin_client, Loan, "export_as_json_lines", [loans[0].pk], site="desk")))

    with django_assert_num_queries(one):
        content = content_of(
            post_action(admin_client, Loan, "export_as_json_lines", pks(loans[1:]), site="desk"))
    assert len(content.splitlines()) == 500


# Change-form actions (Django 6.1): mark_returned on both pages, lend_a_book on a member's


def test_mark_returned_is_labelled_for_many_on_the_list_and_for_one_on_a_loan_s_page(
    admin_client,
):
    loan = make_loans(make_members(1))[0]

    listed = offered_actions(admin_client, Loan)
    assert listed["mark_returned"] == "Mark selected loans as returned"
    page = admin_client.get(change_url(loan))
    assert change_form_actions(page) == {"mark_returned": "Mark this loan as returned"}


def test_the_add_page_and_a_popup_offer_no_action(admin_client):
    loan = make_loans(make_members(1))[0]

    assert admin_client.get(reverse("admin:lending_loan_add")).context["action_form"] is None
    assert change_page(admin_client, loan, "_popup=1").context["action_form"] is None


def test_run_on_a_loan_s_page_returns_that_loan_and_comes_back_to_the_page(admin_client):
    loan, other = make_loans(make_members(2))
    filters = "_changelist_filters=status__exact%3Dlent"

    response = run_on_change_page(admin_client, loan, "mark_returned", query=filters)

    assert response.status_code == 302 and response.url == change_url(loan, filters)
    assert messages_of(admin_client.get(response.url)) == [
        ("success", "1 loan is back on the shelf.")
    ]
    loan.refresh_from_db(), other.refresh_from_db()
    assert (loan.status, loan.returned_on) == (RETURNED, today())
    assert other.status == LENT


def test_mark_returned_records_who_took_each_loan_back_on_either_page(admin_client, admin_user):
    loans = make_loans(make_members(3))

    post_action(admin_client, Loan, "mark_returned", pks(loans[:2]))
    run_on_change_page(admin_client, loans[2], "mark_returned")
    response = run_on_change_page(admin_client, loans[2], "mark_returned")

    entries = LogEntry.objects.filter(action_flag=CHANGE)
    assert sorted(int(entry.object_id) for entry in entries) == pks(loans)
    assert {entry.user_id for entry in entries} == {admin_user.pk}
    assert messages_of(admin_client.get(response.url)) == [
        ("info", "Nothing to record: already returned.")
    ]


def test_the_change_page_posts_its_own_pk_and_refuses_any_other(admin_client):
    loan, other = make_loans(make_members(2))

    _, _, fields = choose_action(admin_client, loan, "mark_returned")

    # Only the action form's own fields carry the prefix; the Run button posts "index".
    assert {"CHANGE_FORM-action", "CHANGE_FORM-select_across"} <= {n for n, _ in fields}
    assert [v for n, v in fields if n == "_selected_action"] == [str(loan.pk)]
    for selected in ([other.pk], [loan.pk, other.pk]):
        response = post_change_form_action(admin_client, loan, "mark_returned", selected)
        assert response.status_code == 400
    assert not Loan.objects.filter(status=RETURNED).exists()


def test_save_wins_over_an_action_chosen_in_the_same_form(admin_client):
    loan = make_loans(make_members(1))[0]
    _, url, fields = choose_action(admin_client, loan, "mark_returned")
    later = (today() + timedelta(days=30)).isoformat()
    fields = [(n, later if n == "due_on" else v) for n, v in fields]

    press(admin_client, url, fields, "_save")

    loan.refresh_from_db()
    assert (loan.status, loan.due_on.isoformat()) == (LENT, later)


def test_lend_a_book_opens_the_loan_form_for_that_member(admin_client):
    member = make_members(1)[0]

    response = run_on_change_page(admin_client, member, "lend_a_book")

    assert response.status_code == 302
    assert response.url == (f"{reverse('admin:lending_loan_add')}"
                            f"?member={member.pk}&lent_on={today().isoformat()}")
    form = admin_client.get(response.url).context["adminform"].form
    assert form.initial["member"] == str(member.pk)


def test_lend_a_book_is_offered_to_those_who_may_add_loans(django_user_model):
    member = make_members(1)[0]
    viewer = staff(django_user_model, "view_member", username="viewer")
    lender = staff(django_user_model, "view_member", "add_loan", username="lender")

    assert change_form_actions(change_page(viewer, member)) == {}
    assert change_form_actions(change_page(lender, member)) == {
        "lend_a_book": "Lend this member a book"
    }


# What Django 6.1 does not check for you: shown on throwaway admins, not on the desk.


def request_as(user, method="get", data=None):
    """A request as the admin's views receive it: user, session and messages attached."""
    request = getattr(RequestFactory(), method)("/", data or {})
    request.user, request.session = user, {}
    request._messages = FallbackStorage(request)
    request._dont_enforce_csrf_checks = True  # the test client skips CSRF checks the same way
    return request


def test_a_change_form_action_without_permissions_runs_for_a_user_who_may_only_view(
    django_user_model,
):
    class CarelessLoanAdmin(admin.ModelAdmin):
        actions = ["mark_back"]

        @admin.action(description="Mark back", location=ActionLocation.CHANGE_FORM)
        def mark_back(self, request, queryset):
            queryset.update(status=RETURNED)

    loan = make_loans(make_members(1))[0]
    viewer = create_staff(django_user_model, "viewer", "lending.view_loan")
    careless = CarelessLoanAdmin(Loan, admin.AdminSite(name="trial"))
    post = request_as(viewer, "post", {
        "CHANGE_FORM-action": "mark_back", "index": "0", "_selected_action": str(loan.pk),
    })

    careless.change_view(post, str(loan.pk))

    loan.refresh_from_db()
    assert loan.status == RETURNED  # the action ran before Django asked "may they change?"


def test_no_system_check_notices_a_missing_permission_method_on_the_change_form(admin_user):
    def forgetful_admin(location):
        """A member admin whose action needs "lend" and that has no has_lend_permission."""

        @admin.action(permissions=["lend"], location=location)
        def lend(modeladmin, request, queryset):
            pass

        forgetful = type("ForgetfulMemberAdmin", (admin.ModelAdmin,), {"actions": [lend]})
        return forgetful(Member, admin.AdminSite(name="trial"))

    on_the_list = forgetful_admin(ActionLocation.CHANGE_LIST)
    on_the_page = forgetful_admin(ActionLocation.CHANGE_FORM)
    member = make_members(1)[0]

    assert [error.id for error in on_the_list.check()] == ["admin.E129"]
    assert on_the_page.check() == []
    with pytest.raises(AttributeError, match="has_lend_permission"):
        on_the_page.change_view(request_as(admin_user), str(member.pk))
    with pytest.raises(AttributeError, match="has_lend_permission"):
        on_the_page.add_view(request_as(admin_user))


class OldStyleLoanAdmin(LoanAdmin):
    def get_actions(self, request):  # the signature before Django 6.1
        return super().get_actions(request)


class KeywordsOnlyLoanAdmin(LoanAdmin):
    def get_actions(self, request, **kwargs):  # no parameter named action_location
        return super().get_actions(request, **kwargs)


@pytest.mark.parametrize("override", [OldStyleLoanAdmin, KeywordsOnlyLoanAdmin])
def test_an_old_style_get_actions_loses_every_change_form_action(admin_user, override):
    loan = make_loans(make_members(1))[0]
    model_admin = override(Loan, admin.AdminSite(name="trial"))

    with pytest.warns(RemovedInDjango2028Warning, match="action_location"):
        page = model_admin.change_view(request_as(admin_user), str(loan.pk))

    assert page.context_data["action_form"] is None  # mark_returned is gone from the page


def refuse_books(execute, sql, params, many, context):
    """A database that refuses to store a book (installed with connection.execute_wrapper)."""
    if sql.startswith('INSERT INTO "lending_book"'):
        raise IntegrityError("refused by the test")
    return execute(sql, params, many, context)


def test_a_caught_error_dooms_the_transaction_unless_a_savepoint_took_it():
    with transaction.atomic():  # as changeform_view opens one around every POST
        make_members(1)
        try:
            with connection.execute_wrapper(refuse_books):
                Book.objects.create(title="Emma")
        except IntegrityError:
            pass  # caught, yet the transaction is marked for rollback
        with pytest.raises(TransactionManagementError):
            Member.objects.count()
    assert not Member.objects.exists()  # nothing was committed

    with transaction.atomic():
        make_members(1)
        try:
            with transaction.atomic(), connection.execute_wrapper(refuse_books):
                Book.objects.create(title="Emma")  # inside a savepoint of its own
        except IntegrityError:
            pass  # only the savepoint is undone
    assert Member.objects.count() == 1  # the work before it was committed


# extend_loans: a form on a page of its own, row locks, mail after commit, a task queue

EXTEND_TEMPLATE = "admin/lending/loan/extend_loans.html"


def extension_page(client, loans, **options):
    """The first POST: the changelist's action form, answered with the extension page."""
    return post_action(client, Loan, "extend_loans", pks(loans), follow=False, **options)


def extend(client, page, follow=True, **typed):
    """Type into the page's form and press "extend", as a browser posts it."""
    form = form_with_button(page, "extend")
    data = {**post_data(form["fields"]), **typed, "extend": dict(form["buttons"])["extend"]}
    return client.post(form_url(page, form), data, follow=follow)


def due_dates(loans):
    return [Loan.objects.get(pk=loan.pk).due_on for loan in loans]


def run_the_worker():
    """One pass of django-tasks-db's worker over the queue, as `manage.py db_worker --batch`
    runs it; the signal handlers it installs are put back afterwards."""
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        call_command("db_worker", "--batch", "--no-startup-delay", "--no-reload", verbosity=0)
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


class RefusingEmailBackend(BaseEmailBackend):
    """A mail server that is down."""

    def send_messages(self, messages):
        raise ConnectionRefusedError("the mail server is down")


def test_the_first_post_shows_the_extension_form_and_changes_nothing(admin_client):
    loans = make_loans(make_members(2))

    page = extension_page(admin_client, loans)

    assert page.status_code == 200 and EXTEND_TEMPLATE in [t.name for t in page.templates]
    assert page.context_data["title"] == "Extend these loans?"
    form = page.context_data["extension_form"]
    assert not form.is_bound and not form.errors  # nothing typed yet: no errors shown
    fields = form_with_button(page, "extend")["fields"]
    assert dict(fields)["days"] == "7" and dict(fields)["action"] == "extend_loans"
    assert sorted(v for n, v in fields if n == "_selected_action") == sorted(
        str(pk) for pk in pks(loans))
    assert "app-lending model-loan" in page.content.decode()
    expect_well_formed(page, "the extension page")
    assert due_dates(loans) == [today() + timedelta(days=7)] * 2
    assert not LogEntry.objects.exists() and not mail.outbox


@pytest.mark.parametrize("typed", [
    {"days": "0"}, {"days": "29"}, {"days": ""}, {"days": "a week"},
    {"message": "x" * 301},
])
def test_what_the_form_refuses_shows_the_page_again_with_its_errors(admin_client, typed):
    loans = make_loans(make_members(2))

    response = extend(admin_client, extension_page(admin_client, loans), **typed)

    assert response.status_code == 200 and EXTEND_TEMPLATE in [t.name for t in response.templates]
    assert list(response.context_data["extension_form"].errors) == list(typed)
    assert 'class="errorlist' in response.content.decode()
    assert due_dates(loans) == [today() + timedelta(days=7)] * 2
    assert messages_of(response) == []


def test_the_page_names_ten_loans_and_counts_the_rest_in_the_same_queries(admin_client):
    make_loans(make_members(3))
    few = queries_of(lambda: extension_page(admin_client, Loan.objects.all()))
    make_loans(make_members(57), status=RETURNED, returned_on=today())

    with CaptureQueriesContext(connection) as queries:
        page = extension_page(admin_client, Loan.objects.all())

    assert len(queries) == few
    text = page.content.decode()
    assert text.count("Middlemarch, Member") == 10 and "and 50 other loans" in text
    assert "3 loans still out get more time." in text
    assert "57 are back already and keep their dates." in text
    assert "queued" not in text


def test_select_all_posts_back_only_the_ticked_rows(admin_client, settings):
    settings.LENDING_INLINE_LIMIT = 1000
    loans = make_loans(make_members(1200))
    ticked = loans[:100]  # one changelist page

    page = extension_page(admin_client, ticked, select_across=True, query="status__exact=lent")

    fields = form_with_button(page, "extend")["fields"]
    assert dict(fields)["select_across"] == "1"
    assert [v for n, v in fields if n == "_selected_action"] == [str(pk) for pk in pks(ticked)]
    assert "queued" in page.content.decode()
    with django_capture_on_commit_callbacks_executed():
        response = extend(admin_client, page, days="3")
    assert messages_of(response) == [("info", (
        "1200 loans were queued for an extension: the worker extends those still out, "
        "and mails their members."))]


def django_capture_on_commit_callbacks_executed():
    """Run what waits for a commit as the request ends: the test's own transaction never
    commits (the fixture django_capture_on_commit_callbacks, without a fixture)."""
    from django.test import TestCase

    return TestCase.captureOnCommitCallbacks(execute=True)


def test_extending_moves_the_loans_still_out_and_skips_the_returned_ones(
    admin_client, admin_user, django_capture_on_commit_callbacks
):
    ada, bob = make_members(2)
    out = make_loans([ada, ada, bob])
    returned = make_loans([bob], status=RETURNED, returned_on=today())
    page = extension_page(admin_client, out + returned)

    with django_capture_on_commit_callbacks(execute=True), \
            CaptureQueriesContext(connection) as queries:
        response = extend(admin_client, page, days="10")

    assert messages_of(response) == [
        ("success", "3 loans were extended."),
        ("warning", "1 selected loan is not out any more and was not extended."),
    ]
    assert due_dates(out) == [today() + timedelta(days=17)] * 3
    assert due_dates(returned) == [today() + timedelta(days=7)]
    updates = [q["sql"] for q in queries if q["sql"].startswith('UPDATE "lending_loan"')]
    # F(): the new date is computed by the database, from the column, in one statement.
    assert len(updates) == 1 and '"lending_loan"."due_on"' in updates[0].split(" WHERE ")[0]
    entries = LogEntry.objects.order_by("object_id")
    assert [(int(e.object_id), e.action_flag, e.user_id, e.change_message) for e in entries] == [
        (loan.pk, CHANGE, admin_user.pk, "Extended by 10 days.") for loan in out]


def test_one_loan_is_extended_in_the_singular(admin_client, django_capture_on_commit_callbacks):
    loan = make_loans(make_members(1))[0]

    with django_capture_on_commit_callbacks(execute=True):
        response = extend(admin_client, extension_page(admin_client, [loan]), days="1")

    assert messages_of(response) == [("success", "1 loan was extended.")]


def test_the_history_is_written_in_one_insert(admin_client, django_capture_on_commit_callbacks):
    loans = make_loans(make_members(30))
    page = extension_page(admin_client, loans)

    with CaptureQueriesContext(connection) as queries:
        extend(admin_client, page, follow=False)

    inserts = [q["sql"] for q in queries if q["sql"].startswith('INSERT INTO "django_admin_log"')]
    assert len(inserts) == 1 and LogEntry.objects.count() == 30


def test_extending_runs_as_many_queries_for_40_loans_as_for_1(
    admin_client, django_capture_on_commit_callbacks
):
    ContentType.objects.get_for_model(Loan)  # cached from now on, as in a running site
    loans = make_loans(make_members(41))
    first_page = extension_page(admin_client, loans[:1])
    one = queries_of(lambda: extend(admin_client, first_page, follow=False))

    page = extension_page(admin_client, loans[1:])
    assert queries_of(lambda: extend(admin_client, page, follow=False)) == one
    assert due_dates(loans) == [today() + timedelta(days=14)] * 41


def test_each_member_is_mailed_once_and_only_after_the_commit(
    admin_client, django_capture_on_commit_callbacks
):
    ada, bob, cy = make_members(3)
    Member.objects.filter(pk=cy.pk).update(email="")
    loans = make_loans([ada, bob, cy]) + make_loans([ada], due_in_days=3)
    Book.objects.filter(pk=loans[3].book_id).update(title="Persuasion")
    page = extension_page(admin_client, loans)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        extend(admin_client, page, days="5", message="Enjoy the summer!")
    assert due_dates(loans) == [today() + timedelta(days=12)] * 3 + [today() + timedelta(days=8)]
    assert not mail.outbox and len(callbacks) == 1  # extended, and not mailed yet

    callbacks[0]()  # the commit

    assert sorted(m.to for m in mail.outbox) == [["member1@example.com"], ["member2@example.com"]]
    to_ada = next(m for m in mail.outbox if m.to == ["member1@example.com"])
    assert to_ada.subject == "More time for your books"
    assert to_ada.body == (
        "Dear Member 1,\n\nYou may keep these books 5 days longer:\n"
        f"- Middlemarch, now due on {today() + timedelta(days=12)}\n"
        f"- Persuasion, now due on {today() + timedelta(days=8)}\n"
        "\nEnjoy the summer!\n"
    )


def test_the_notices_leave_in_one_send_messages_batch(
    admin_client, settings, django_capture_on_commit_callbacks
):
    settings.MAILERS = {"default": {"BACKEND": "workbook.testing.RecordingEmailBackend"}}
    RecordingEmailBackend.batches = []
    loans = make_loans(make_members(5))

    with django_capture_on_commit_callbacks(execute=True):
        extend(admin_client, extension_page(admin_client, loans))

    assert [count for _, count in RecordingEmailBackend.batches] == [5]


def test_a_rolled_back_extension_changes_and_mails_nothing(
    admin_client, monkeypatch, django_capture_on_commit_callbacks
):
    loans = make_loans(make_members(2))
    page = extension_page(admin_client, loans)

    def fail(**kwargs):
        raise RuntimeError("the history table is full")

    monkeypatch.setattr(LogEntry.objects, "log_actions", fail)
    with django_capture_on_commit_callbacks(execute=True) as callbacks, \
            pytest.raises(RuntimeError):
        extend(admin_client, page)

    assert due_dates(loans) == [today() + timedelta(days=7)] * 2
    assert callbacks == [] and not mail.outbox  # rolled back: the callback went with it


def test_a_mail_server_down_after_the_commit_does_not_undo_the_extension(
    admin_client, settings, caplog, django_capture_on_commit_callbacks
):
    settings.MAILERS = {"default": {
        "BACKEND": "lessons.lending.test_lending.RefusingEmailBackend"}}
    loans = make_loans(make_members(2))

    with django_capture_on_commit_callbacks(execute=True):
        response = extend(admin_client, extension_page(admin_client, loans))

    assert messages_of(response) == [("success", "2 loans were extended.")]
    assert due_dates(loans) == [today() + timedelta(days=14)] * 2
    assert "the mail server is down" in caplog.text  # logged, not raised: robust=True


def test_a_view_only_user_cannot_extend_even_by_a_forged_post(django_user_model):
    reader = staff(django_user_model, "view_loan", "send_reminders")
    loan = make_loans(make_members(1))[0]

    assert "extend_loans" not in offered_actions(reader, Loan)
    response = post_action(reader, Loan, "extend_loans", [loan.pk], extend="Extend", days="9")

    assert messages_of(response) == [("warning", "No action selected.")]
    assert due_dates([loan]) == [today() + timedelta(days=7)]


def test_a_selection_gone_before_the_page_is_shown_says_so(admin_client):
    loans = make_loans(make_members(2))
    Loan.objects.all().delete()

    response = post_action(admin_client, Loan, "extend_loans", pks(loans))

    assert messages_of(response) == [("warning", "No loans were extended: the selected loans "
                                      "were deleted or no longer match the filters.")]


# Too big for a request: a django.tasks task, stored by django-tasks-db, run by db_worker


def test_above_the_limit_the_extension_is_queued_once_the_request_commits(
    admin_client, admin_user, settings, django_capture_on_commit_callbacks
):
    settings.LENDING_INLINE_LIMIT = 3
    loans = make_loans(make_members(4))
    page = extension_page(admin_client, loans)
    assert "it will be queued" in page.content.decode()

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = extend(admin_client, page, days="2", message="Take your time.")
    assert not DBTaskResult.objects.exists() and len(callbacks) == 1
    callbacks[0]()  # the commit: now the task is stored

    assert messages_of(response) == [("info", (
        "4 loans were queued for an extension: the worker extends those still out, and "
        "mails their members."))]
    assert due_dates(loans) == [today() + timedelta(days=7)] * 4 and not mail.outbox
    queued = DBTaskResult.objects.get()
    assert queued.task_path == "lessons.lending.admin.extend_lent_loans"
    # JSON: the keys, the form's cleaned values and the clerk's id.
    (keys, *rest), kwargs = queued.args_kwargs["args"], queued.args_kwargs["kwargs"]
    assert sorted(keys) == pks(loans) and rest == [2, "Take your time.", admin_user.pk]
    assert kwargs == {}


def test_one_queued_loan_is_said_in_the_singular(
    admin_client, settings, django_capture_on_commit_callbacks
):
    settings.LENDING_INLINE_LIMIT = 0
    loan = make_loans(make_members(1))[0]

    with django_capture_on_commit_callbacks(execute=True):
        response = extend(admin_client, extension_page(admin_client, [loan]))

    assert messages_of(response) == [("info", (
        "1 loan was queued for an extension: the worker extends it if it is still out, and "
        "mails its member."))]


# The worker commits, and closes its connection between tasks as a long-lived process must:
# the test commits too, rather than hold everything in one transaction.
@pytest.mark.django_db(transaction=True)
def test_the_worker_extends_a_queued_selection_as_the_request_would(
    admin_client, admin_user, settings
):
    settings.LENDING_INLINE_LIMIT = 3
    out = make_loans(make_members(3))
    returned = make_loans(make_members(1), status=RETURNED, returned_on=today())
    extend(admin_client, extension_page(admin_client, out + returned), days="4")
    assert due_dates(out) == [today() + timedelta(days=7)] * 3

    run_the_worker()

    result = DBTaskResult.objects.get()
    assert result.status == "SUCCESSFUL"
    assert result.task_result.return_value == {"extended": 3, "not_out": 1}
    assert due_dates(out) == [today() + timedelta(days=11)] * 3
    assert due_dates(returned) == [today() + timedelta(days=7)]
    entries = LogEntry.objects.all()
    assert sorted(int(e.object_id) for e in entries) == pks(out)
    assert {e.user_id for e in entries} == {admin_user.pk}
    assert sorted(m.to[0] for m in mail.outbox) == [
        "member1@example.com", "member2@example.com", "member3@example.com"]


def test_the_request_calls_the_task_s_own_function(admin_user, django_capture_on_commit_callbacks):
    loans = make_loans(make_members(2))

    with django_capture_on_commit_callbacks(execute=True):
        done = extend_lent_loans.call(pks(loans), 3, "", admin_user.pk)

    assert done == {"extended": 2, "not_out": 0}
    assert not DBTaskResult.objects.exists() and len(mail.outbox) == 2


def test_a_task_takes_json_and_a_module_level_function():
    with pytest.raises(TypeError, match="Unsupported type"):
        extend_lent_loans.enqueue(Loan.objects.all(), 3, "", 1)
    for not_json in (timedelta(days=3), date(2025, 6, 30)):
        with pytest.raises(TypeError, match="Unsupported type"):
            extend_lent_loans.enqueue([1], not_json, "", 1)
    assert not DBTaskResult.objects.exists()

    with pytest.raises(InvalidTask, match="module level"):
        @task
        def nested(loan_pks):
            pass


# Two clerks at once: proven where rows can be locked (PostgreSQL)


@pytest.mark.django_db(transaction=True)
def test_two_clerks_extending_the_same_loan_at_once_take_turns(
    django_user_model, settings
):
    needs_row_locks(connection)
    first = staff(django_user_model, "view_loan", "change_loan", username="first")
    second = staff(django_user_model, "view_loan", "change_loan", username="second")
    loan = make_loans(make_members(1))[0]
    pages = [extension_page(first, [loan]), extension_page(second, [loan])]
    first_has_read = threading.Event()
    let_first_go = threading.Event()

    def pause_after_reading(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        # The task's read: the loans with their members and books, to mail them.
        if sql.startswith("SELECT") and 'JOIN "lending_book"' in sql:
            first_has_read.set()
            let_first_go.wait(timeout=10)
        return result

    def press(client, page, wrapper=None):
        from django.db import connection as own  # this thread's connection

        try:
            if wrapper:
                with own.execute_wrapper(wrapper):
                    extend(client, page, follow=False)
            else:
                extend(client, page, follow=False)
        finally:
            own.close()

    one = threading.Thread(target=press, args=(first, pages[0], pause_after_reading))
    one.start()
    assert first_has_read.wait(timeout=10)
    two = threading.Thread(target=press, args=(second, pages[1]))
    two.start()
    two.join(timeout=1)
    assert two.is_alive()  # waiting for the first clerk's lock
    let_first_go.set()
    one.join(timeout=10), two.join(timeout=10)

    due = today() + timedelta(days=7)
    assert due_dates([loan]) == [due + timedelta(days=14)]
    # The second clerk read the date the first one wrote: each mail names the true date.
    assert sorted(m.body.splitlines()[3] for m in mail.outbox) == [
        f"- Middlemarch, now due on {due + timedelta(days=7)}",
        f"- Middlemarch, now due on {due + timedelta(days=14)}",
    ]


@pytest.mark.django_db(transaction=True)
def test_a_return_and_an_extension_of_the_same_loans_take_turns_not_deadlock(django_user_model):
    """The changelist sorts loans by due date, then by -pk: locked as it comes, a return takes
    the higher key first, and an extension by key takes the lower. A row held by the test
    makes the two meet halfway, every time; then it lets go."""
    needs_row_locks(connection)
    returning = staff(django_user_model, "view_loan", "change_loan", username="returning")
    extending = staff(django_user_model, "view_loan", "change_loan", username="extending")
    low, high = make_loans(make_members(2))  # the same due date
    page = extension_page(extending, [low, high])

    with row_held(Loan, high.pk):
        back = Clerk("return", lambda: post_action(returning, Loan, "mark_returned",
                                                   pks([low, high]), follow=False))
        back.start()
        wait_for_lock_waiters(1, "The return")
        more = Clerk("extension", lambda: extend(extending, page, follow=False))
        more.start()
        wait_for_lock_waiters(2, "The return and the extension")
    back.join(60), more.join(60)

    assert [back.outcome(), more.outcome()] == ["return: answered 302", "extension: answered 302"]
    # The return locked first, so it went first; the extension found nothing still out.
    assert [loan.status for loan in Loan.objects.order_by("pk")] == [RETURNED, RETURNED]
    assert due_dates([low, high]) == [today() + timedelta(days=7)] * 2
    assert not mail.outbox


# Parameters and buttons (lesson 08): postpone_loans reads the days typed in the desk's
# action bar, on the changelist and on a loan's page; renew_due needs no selection.


def desk_url(name, *args):
    return reverse(f"desk:lending_loan_{name}", args=args)


def postpone(client, loans, days=None, follow=True):
    extra = {} if days is None else {"days": days}
    return post_action(client, Loan, "postpone_loans", pks(loans), site="desk",
                       follow=follow, **extra)


def dues():
    return {loan.pk: loan.due_on for loan in Loan.objects.all()}


def test_postpone_moves_the_selected_loans_still_out_by_the_days_typed(admin_client):
    loans = make_loans(make_members(3), due_in_days=2)
    Loan.objects.filter(pk=loans[2].pk).update(status=RETURNED)
    before = dues()

    response = postpone(admin_client, loans[1:], "10")

    assert dues() == {**before, loans[1].pk: before[loans[1].pk] + timedelta(days=10)}
    assert messages_of(response) == [("success", "1 loan is now due 10 days later.")]


@pytest.mark.parametrize("days", [None, "", "0", "31", "ten"])
def test_postpone_without_a_valid_number_changes_nothing_and_says_why(admin_client, days):
    loans = make_loans(make_members(2))
    before = dues()

    response = postpone(admin_client, loans, days)

    assert dues() == before
    [(level, text)] = messages_of(response)
    assert level == "error"
    if not days:
        assert text == "Type how many days to postpone the loans by."


def test_a_strict_field_in_the_bar_would_stop_every_action_of_it(admin_client, monkeypatch):
    """Why the bar's field takes anything: Django validates the bar's whole form before any
    action, so a required field there turns even the export into "No action selected."."""
    from django import forms

    from .sites import DaysBar, LoanDeskAdmin, desk

    class StrictBar(DaysBar):
        days = forms.IntegerField(min_value=1)

    monkeypatch.setattr(desk._registry[Loan], "action_form", StrictBar)
    loan = make_loans(make_members(1))[0]

    response = post_action(admin_client, Loan, "export_as_json_lines", [loan.pk], site="desk")

    assert messages_of(response) == [("warning", "No action selected.")]
    assert LoanDeskAdmin.action_form is DaysBar  # the desk's own: the export runs
    monkeypatch.undo()
    assert post_action(admin_client, Loan, "export_as_json_lines", [loan.pk],
                       site="desk").streaming


def test_postpone_runs_one_update_whatever_the_selection(admin_client):
    loans = make_loans(make_members(200))
    url = changelist_url(Loan, site="desk")
    counts = []
    for selected in (loans[:1], loans):
        with CaptureQueriesContext(connection) as captured:
            postpone(admin_client, selected, "3", follow=False)
        counts.append([q["sql"].split(" ", 1)[0] for q in captured.captured_queries
                       if '"lending_loan"' in q["sql"]])
    assert counts[0] == counts[1] and counts[0].count("UPDATE") == 1, url


def test_postpone_on_a_loan_s_page_reads_the_prefixed_field(admin_client):
    """On the change page the bar posts CHANGE_FORM-days: request.POST["days"] is not there."""
    loan = make_loans(make_members(1))[0]
    before = loan.due_on
    _, url, fields = choose_action(admin_client, loan, "postpone_loans", site="desk")
    assert "CHANGE_FORM-days" in dict(fields) and "days" not in dict(fields)
    fields = [(n, v) for n, v in fields if n != "CHANGE_FORM-days"] + [("CHANGE_FORM-days", "5")]

    response = press(admin_client, url, fields, "index", "0")

    assert response.status_code == 302 and response.url == url
    loan.refresh_from_db()
    assert loan.due_on == before + timedelta(days=5)


def test_the_renew_button_renews_every_loan_due_by_tomorrow(admin_client):
    soon = make_loans(make_members(2), due_in_days=1)
    later = make_loans(make_members(1), due_in_days=5)
    page = admin_client.get(changelist_url(Loan, site="desk"))
    form = form_with_button(page, "renew_due")
    assert form_url(page, form) == desk_url("renew_due")

    response = admin_client.post(desk_url("renew_due"), post_data(form["fields"]), follow=True)

    assert messages_of(response) == [("success", "2 loans due by tomorrow were renewed.")]
    assert {pk: due - today() for pk, due in dues().items()} == {
        soon[0].pk: timedelta(days=15), soon[1].pk: timedelta(days=15),
        later[0].pk: timedelta(days=5)}


def test_the_renew_button_refuses_a_get_a_stranger_a_reader_and_a_forged_post(
    admin_client, client, django_user_model
):
    make_loans(make_members(2), due_in_days=0)
    before = dues()
    url = desk_url("renew_due")
    assert admin_client.get(url).status_code == 405
    stranger = client.post(url)  # not logged in: admin_view sends them to log in
    assert stranger.status_code == 302 and stranger.url.startswith(reverse("desk:login"))
    assert staff(django_user_model, "view_loan").post(url).status_code == 403
    forged = Client(enforce_csrf_checks=True)
    forged.force_login(django_user_model.objects.get(username="admin"))
    assert forged.post(url).status_code == 403  # no CSRF token
    assert dues() == before


def test_without_admin_view_a_stranger_runs_the_view(client, settings):
    """The popular recipe that forgets admin_view, on a throwaway site: nobody sends the
    stranger to log in, and a view that trusted the admin to do so runs for them."""
    from types import ModuleType

    from django.http import HttpResponse
    from django.urls import path

    class CarelessLoanAdmin(admin.ModelAdmin):
        def get_urls(self):
            return [path("renew-due/", self.renew_due, name="renew_due"), *super().get_urls()]

        def renew_due(self, request):
            Loan.objects.update(due_on=F("due_on") + timedelta(days=14))
            return HttpResponse("renewed")

    throwaway = admin.AdminSite(name="throwaway")
    throwaway.register(Loan, CarelessLoanAdmin)
    urls = ModuleType("throwaway_urls")
    urls.urlpatterns = [path("throwaway/", throwaway.urls)]
    settings.ROOT_URLCONF = urls
    loan = make_loans(make_members(1), due_in_days=0)[0]

    response = client.post(reverse("throwaway:renew_due"))  # not logged in

    assert response.status_code == 200
    loan.refresh_from_db()
    assert loan.due_on == today() + timedelta(days=14)


def test_an_async_action_is_never_awaited(admin_client, monkeypatch):
    """The redirect comes, as after any action; nothing ran, and Python only warns."""
    from .sites import desk

    async def close_loans(modeladmin, request, queryset):
        await queryset.aupdate(status=RETURNED)

    model_admin = desk._registry[Loan]
    monkeypatch.setattr(model_admin, "actions", ["postpone_loans", close_loans])
    loan = make_loans(make_members(1))[0]

    with pytest.warns(RuntimeWarning, match="was never awaited"):
        response = post_action(admin_client, Loan, "close_loans", [loan.pk], site="desk",
                               follow=False)

    assert response.status_code == 302
    loan.refresh_from_db()
    assert loan.status == LENT


@pytest.mark.parametrize("count, said", [
    (1, "1 wypożyczenie ma termin później o 3 dni."),
    (2, "2 wypożyczenia mają termin później o 3 dni."),
    (5, "5 wypożyczeń ma termin później o 3 dni."),
])
def test_in_polish_the_desk_speaks_polish_in_the_right_plural(admin_client, count, said):
    """gettext_lazy: the label is translated when the page shows it, in the user's language;
    ngettext: the catalog picks among Polish's forms, where English has two."""
    loans = make_loans(make_members(count))
    with translation.override("pl"):
        offered = offered_actions(admin_client, Loan, site="desk")
        response = postpone(admin_client, loans, "3")
    assert offered["postpone_loans"] == "Przesuń termin o wpisaną liczbę dni"
    assert messages_of(response) == [("success", said)]
