"""Graded tests for exercise 04: the same changelist, as four different users.

A superuser; an editor (staff who may view, change, delete and send notifications); a writer
(staff who may view and change); a reader (staff who may only view). Each one loads the
changelist or posts its action form with Django's test client. Run them with:

    pytest exercises/04_conditional
"""

import warnings
from datetime import timedelta

import pytest
from django.apps import apps
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from workbook.testing import (
    RecordingEmailBackend,
    changelist_url,
    expect,
    expect_action_offered,
    expect_num_queries,
    listed_differences,
    login_staff,
    messages_of,
    offered_actions,
    parse_page,
    post_action,
    staff_client,
    statement_kinds,
)

Article = apps.get_model("conditional", "Article")
DRAFT, PUBLISHED = Article.Status.DRAFT, Article.Status.PUBLISHED

EDITOR = ["view_article", "change_article", "delete_article", "send_notifications"]
WRITER = ["view_article", "change_article"]
READER = ["view_article"]

pytestmark = pytest.mark.django_db


@pytest.fixture
def editor(django_user_model):
    return staff_client(django_user_model, "conditional", EDITOR, "editor")


@pytest.fixture
def writer(django_user_model):
    return staff_client(django_user_model, "conditional", WRITER, "writer")


@pytest.fixture
def reader(django_user_model):
    return staff_client(django_user_model, "conditional", READER, "reader")


def make_articles(author, count, title="Article", **fields):
    return Article.objects.bulk_create(
        Article(title=f"{title} {i}", author=author, **fields) for i in range(1, count + 1)
    )


def describe(offered):
    return ", ".join(sorted(offered)) or "no action at all"


def listed(shown):
    return "\n".join(f"  [{level}] {text}" for level, text in shown) or "  (no message at all)"


def expect_messages(response, expected, action, advice):
    """Fail unless the page shows exactly the messages `expected`, (level, text) each."""
    __tracebackhide__ = True
    expect(
        response.status_code == 200,
        f"Running '{action}' answered {response.status_code}, not the changelist again. "
        "Look at the error in the test output above.",
    )
    shown = messages_of(response)
    expect(
        sorted(shown) == sorted(expected),
        f"After running '{action}' the changelist should show exactly:\n{listed(expected)}\n"
        f"It shows:\n{listed(shown)}\nWhat differs:\n"
        f"{listed_differences(sorted(expected), sorted(shown))}{advice}",
    )


def queries_of(post):
    """The SQL queries one call of `post()` runs."""
    with CaptureQueriesContext(connection) as queries:
        post()
    return len(queries)


def statements_on_articles(client, action, selected):
    """What the action itself ran on the article table (see statement_kinds)."""
    return statement_kinds(client, Article, action, selected)


# Task 1: Keep delete_selected for superusers


@pytest.mark.task(1, points=2)
def test_superusers_are_offered_every_action(admin_client):
    offered = offered_actions(admin_client, Article)

    expected = {"delete_selected", "make_published", "notify_authors"}
    expect(
        expected <= set(offered),
        f"A superuser should be offered {', '.join(sorted(expected))}; the dropdown holds "
        f"{describe(offered)}. Which list names the actions of a ModelAdmin, and does every "
        "name in it match a method (lesson 04, Task 1)?",
    )


@pytest.mark.task(1, points=2)
def test_staff_are_not_offered_delete_selected_even_with_delete_permission(editor):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        offered = offered_actions(editor, Article)

    # Only this exercise's actions and delete_selected count: another exercise's site-wide
    # action must not change this result.
    mine = set(offered) & {"delete_selected", "make_published", "notify_authors"}
    expect(
        mine == {"make_published", "notify_authors"},
        "An editor (staff who may view, change, delete and notify) should be offered "
        f"make_published and notify_authors only; the dropdown holds {describe(offered)}. "
        "The delete permission alone must not bring delete_selected: it is for superusers "
        "(lesson 04, Task 1). Which method builds the actions for this user, and how does "
        "the desk's LoanAdmin.get_actions take one out ('Taking an action away')?",
    )
    deprecated = [str(w.message) for w in caught if "action_location" in str(w.message)]
    expect(
        not deprecated,
        f"Loading the changelist, Django warned:\n  {deprecated[0] if deprecated else ''}\n"
        "The contract is no such warning. Compare your override's signature, and what it "
        "passes to super(), with the desk's LoanAdmin.get_actions (lesson 04, 'Taking an "
        "action away').",
    )


@pytest.mark.task(1, points=2)
def test_a_forged_delete_selected_from_staff_deletes_nothing(editor, admin_user):
    articles = make_articles(admin_user, 2)

    # What Django's own confirmation page posts back, forged by a user not offered it.
    post_action(editor, Article, "delete_selected", [a.pk for a in articles], post="yes")

    left = Article.objects.filter(pk__in=[a.pk for a in articles]).count()
    expect(
        left == 2,
        f"An editor forged a POST of delete_selected and {2 - left} articles were deleted; "
        "the contract is that nothing is. An action taken out of what the admin offers this "
        "user is refused too (lesson 04, 'Who is offered what, and who is obeyed'): is "
        "yours only hidden from the page?",
    )


# Task 2: Publish, for those who may change


@pytest.mark.task(2, points=1)
def test_make_published_is_offered_to_staff_who_may_change(writer):
    expect_action_offered(writer, Article, "make_published", "Mark selected articles as published")


PUBLISH_ADVICE = (
    "make_published sends one message: SUCCESS with the number of articles it changed, or, "
    "when it changed none, a WARNING saying why (the lesson gives each text)."
)


@pytest.mark.task(2, points=2)
def test_make_published_publishes_the_selected_drafts_and_only_those(writer, admin_user):
    expect_action_offered(writer, Article, "make_published")
    selected = make_articles(admin_user, 2)
    unselected = make_articles(admin_user, 1, title="Unselected")

    response = post_action(writer, Article, "make_published", [a.pk for a in selected])

    still_draft = Article.objects.filter(pk__in=[a.pk for a in selected], status=DRAFT).count()
    expect(
        still_draft == 0,
        f"The writer published 2 selected drafts; {still_draft} of them are still drafts.",
    )
    expect(
        Article.objects.get(pk=unselected[0].pk).status == DRAFT,
        "The writer selected 2 of 3 drafts and make_published published the third one too. "
        "Change the queryset the action receives: it holds the selected rows only.",
    )
    expect_messages(
        response, [("success", "2 articles were marked as published.")], "make_published",
        PUBLISH_ADVICE,
    )


@pytest.mark.task(2, points=2)
def test_publishing_sets_pub_date_once(writer, admin_user):
    expect_action_offered(writer, Article, "make_published")
    first_out = timezone.now() - timedelta(days=30)
    (fresh,) = make_articles(admin_user, 1, title="Fresh")
    (back,) = make_articles(admin_user, 1, title="Back to draft", pub_date=first_out)
    (live,) = make_articles(
        admin_user, 1, title="Live", status=PUBLISHED, pub_date=first_out
    )

    before = timezone.now()
    post_action(writer, Article, "make_published", [fresh.pk, back.pk, live.pk])
    after = timezone.now()

    fresh, back, live = (Article.objects.get(pk=a.pk) for a in (fresh, back, live))
    expect(
        fresh.status == PUBLISHED and fresh.pub_date is not None
        and before <= fresh.pub_date <= after,
        f"A draft that was never published should get pub_date = now ({before:%H:%M:%S}); "
        f"it is {fresh.status} with pub_date {fresh.pub_date}. The contract is the moment "
        "of publishing, set in the one UPDATE (lesson 04, Task 2).",
    )
    expect(
        back.status == PUBLISHED and back.pub_date == first_out,
        f"A draft that was published before (pub_date {first_out:%Y-%m-%d}) should keep that "
        f"date; it is {back.status} with pub_date {back.pub_date}. pub_date records when an "
        "article first went out. How does the desk's renew_loans keep a renewed_on that is "
        "already set, in the same UPDATE?",
    )
    expect(
        live.pub_date == first_out,
        f"An article already published had pub_date {first_out:%Y-%m-%d}; make_published "
        f"changed it to {live.pub_date}; the contract is that an article already published "
        "is not touched at all. Which rows does your UPDATE touch?",
    )


@pytest.mark.task(2, points=1)
def test_articles_already_published_are_not_counted(writer, admin_user):
    expect_action_offered(writer, Article, "make_published")
    (draft,) = make_articles(admin_user, 1)
    live = make_articles(admin_user, 2, title="Live", status=PUBLISHED)

    response = post_action(writer, Article, "make_published", [draft.pk] + [a.pk for a in live])

    expect_messages(
        response, [("success", "1 article was marked as published.")], "make_published",
        "The writer selected 1 draft and 2 articles already published: 1 article changed. "
        "update() returns the rows its WHERE matched, not the rows it changed: which rows "
        "does the desk's renew_loans leave out of its WHERE, and why? " + PUBLISH_ADVICE,
    )


@pytest.mark.task(2, points=2)
def test_nothing_to_publish_is_a_warning_not_a_success(writer, admin_user):
    expect_action_offered(writer, Article, "make_published")
    live = make_articles(admin_user, 2, title="Live", status=PUBLISHED)

    for selection, expected in (
        (live[:1], "No articles were changed: the 1 selected was already published."),
        (live, "No articles were changed: the 2 selected were already published."),
    ):
        response = post_action(writer, Article, "make_published", [a.pk for a in selection])
        expect_messages(
            response, [("warning", expected)], "make_published",
            f"The writer selected {len(selection)} article(s) already published: nothing "
            "changed, and that is a WARNING, not a SUCCESS. " + PUBLISH_ADVICE,
        )


@pytest.mark.task(2, points=1)
def test_publishing_articles_deleted_meanwhile_says_so(writer, admin_user):
    expect_action_offered(writer, Article, "make_published")
    articles = make_articles(admin_user, 2)
    selected = [a.pk for a in articles]
    # Another editor deletes them while the writer's changelist is still open.
    Article.objects.filter(pk__in=selected).delete()

    response = post_action(writer, Article, "make_published", selected)

    expect_messages(
        response,
        [(
            "warning",
            "No articles were changed: "
            "the selected articles no longer exist or no longer match the filters.",
        )],
        "make_published",
        "The writer posted 2 articles that were deleted meanwhile: Django calls the action with "
        "an empty queryset. Nothing was 'already published'; say that the selection is gone.",
    )


@pytest.mark.task(2, points=1)
def test_make_published_runs_as_many_queries_for_40_articles_as_for_1(
    writer, admin_user
):
    expect_action_offered(writer, Article, "make_published")
    articles = make_articles(admin_user, 41)
    one = queries_of(
        lambda: post_action(writer, Article, "make_published", [articles[0].pk], follow=False)
    )

    with expect_num_queries(
        one,
        info="Publishing 40 articles ran more queries than publishing 1: something runs once "
        "per article. The contract is one UPDATE whatever the selection (lesson 04, Task 2; "
        "the desk's renew_loans).",
    ):
        post_action(writer, Article, "make_published", [a.pk for a in articles[1:]],
                    follow=False)
    expect(
        not Article.objects.filter(status=DRAFT).exists(),
        "After publishing all 41 articles, some are still drafts.",
    )


@pytest.mark.task(2, points=1)
def test_publishing_runs_one_update_and_counts_only_when_nothing_changed(writer, admin_user):
    expect_action_offered(writer, Article, "make_published")
    drafts = make_articles(admin_user, 2)
    live = make_articles(admin_user, 2, title="Live", status=PUBLISHED)

    for what, selected, expected, contract in (
        ("2 drafts and 2 published articles", drafts + live, ["UPDATE"],
         "one UPDATE and nothing else: no SELECT and no COUNT of articles"),
        ("2 published articles", live, ["COUNT", "UPDATE"],
         "the UPDATE (matching no row) and one COUNT of the selection, nothing else"),
    ):
        kinds, listing = statements_on_articles(
            writer, "make_published", [a.pk for a in selected]
        )
        expect(
            sorted(kinds) == expected,
            f"The writer ran make_published on {what}. On the article table it ran:\n"
            f"{listing}\nThe contract here is {contract} (lesson 04, Task 2). The desk's "
            "renew_loans counts on every run; on which path does your contract need a count?",
        )


@pytest.mark.task(2, points=2)
def test_a_reader_is_offered_no_action_and_changes_nothing(admin_client, reader, admin_user):
    expect_action_offered(admin_client, Article, "make_published")
    articles = make_articles(admin_user, 2)

    offered = offered_actions(reader, Article)
    post_action(reader, Article, "make_published", [a.pk for a in articles])

    # The advice, and the task it is filed under, follow what the reader was offered.
    why = {
        "delete_selected": (1, "delete_selected is offered, though a reader may not delete: "
                            "which method decides who is offered it (lesson 04, Task 1)?"),
        "make_published": (2, "make_published is offered, though a reader may not change "
                           "articles. An action that declares no permission is offered to "
                           "everyone who may see the changelist (lesson 04, Task 2; see "
                           "'Permissions on an action')."),
        "notify_authors": (3, "notify_authors is offered, though a reader may not send "
                           "notifications: which permission does it declare, and which method "
                           "of ArticleAdmin answers for it (lesson 04, Task 3)?"),
    }
    wrong = sorted(set(offered) & set(why))
    expect(
        not wrong,
        f"A reader (view permission only) is offered {describe(offered)}; the contract is "
        "no action at all.\n" + "\n".join(why[name][1] for name in wrong),
        task=min((why[name][0] for name in wrong), default=None),
    )
    expect(
        not Article.objects.filter(status=PUBLISHED).exists(),
        "A reader forged a POST of make_published and articles were published; the "
        "contract is that nothing changes. Is make_published refused by Django, before "
        "your code runs, to a user who may not change articles?",
    )


# Task 3: Notify the authors, for those who may notify

NOTIFY_ADVICE = (
    "notify_authors sends a SUCCESS with the number of authors notified (none when nobody "
    "was), and one WARNING per reason authors were skipped: no address, an invalid address "
    "(the lesson gives each text)."
)
# Addresses Django's validate_email refuses. The first would inject a header, and makes
# building its email raise ValueError; the others would be sent and bounce.
HEADER_INJECTION = "eve@example.com\nBcc: mallory@example.com"
NO_AT_SIGN = "nora.example.com"
DISPLAY_NAME = "Dan <dan@example.com>"


def author_with(django_user_model, username, email=""):
    return django_user_model.objects.create_user(username, email=email)


def record_batches(settings):
    """Send mail through RecordingEmailBackend: each send_messages() call is recorded."""
    settings.MAILERS = {"default": {"BACKEND": "workbook.testing.RecordingEmailBackend"}}
    RecordingEmailBackend.batches.clear()
    return RecordingEmailBackend.batches


@pytest.mark.task(3, points=1)
def test_notify_authors_is_offered_to_those_who_may_notify(editor, writer):
    expect_action_offered(editor, Article, "notify_authors", "Send notification to authors")
    offered = offered_actions(writer, Article)
    expect(
        "notify_authors" not in offered,
        "A writer without the send_notifications permission is offered notify_authors; the "
        "contract is that only holders of conditional.send_notifications are (lesson 04, "
        "Task 3). How does the desk offer send_overdue_reminders only to those who hold "
        "send_reminders ('Permissions on an action')?",
    )


@pytest.mark.task(3, points=3)
def test_one_email_per_author_listing_their_selected_articles(
    editor, django_user_model, mailoutbox
):
    expect_action_offered(editor, Article, "notify_authors")
    ada = django_user_model.objects.create_user("ada", email="ada@example.com")
    bob = django_user_model.objects.create_user("bob", email="bob@example.com")
    # Created in an order that is neither alphabetical nor its reverse.
    ada_selected = [
        make_articles(ada, 1, title=title)[0] for title in ("Beta", "Alpha", "Gamma")
    ]
    make_articles(ada, 1, title="Ada's unselected")
    bob_selected = make_articles(bob, 1, title="Bob's")

    response = post_action(
        editor, Article, "notify_authors", [a.pk for a in ada_selected + bob_selected]
    )

    recipients = sorted(tuple(m.to) for m in mailoutbox)
    expect(
        recipients == [("ada@example.com",), ("bob@example.com",)],
        f"Expected one email to each of the 2 authors; the outbox holds emails to {recipients}.",
    )
    to_ada = next(m for m in mailoutbox if m.to == ["ada@example.com"])
    expect(
        all(a.title in to_ada.body for a in ada_selected)
        and "unselected" not in to_ada.body,
        f"Ada's email should list her 3 selected articles, and only those:\n{to_ada.body}",
    )
    positions = [to_ada.body.find(title) for title in ("Alpha", "Beta", "Gamma")]
    expect(
        positions == sorted(positions),
        "Ada's email should list her titles in alphabetical order (Alpha, Beta, Gamma), so "
        f"that a long list is easy to scan; it reads:\n{to_ada.body}\nIn which order do "
        "your rows come when you do not ask for one?",
    )
    expect(
        all(m.subject.strip() for m in mailoutbox),
        f"Every email needs a subject; the subjects are {[m.subject for m in mailoutbox]}.",
    )
    expect_messages(
        response, [("success", "Notifications sent to 2 authors.")], "notify_authors",
        NOTIFY_ADVICE,
    )


@pytest.mark.task(3, points=2)
def test_authors_without_an_email_address_are_skipped_and_counted(
    editor, django_user_model, mailoutbox
):
    expect_action_offered(editor, Article, "notify_authors")
    ada = django_user_model.objects.create_user("ada", email="ada@example.com")
    articles = make_articles(ada, 1)
    for name in ("carl", "dan"):
        articles += make_articles(django_user_model.objects.create_user(name), 1, title=name)

    response = post_action(editor, Article, "notify_authors", [a.pk for a in articles])

    expect(
        [m.to for m in mailoutbox] == [["ada@example.com"]],
        f"Only ada has an address; emails went to {[m.to for m in mailoutbox]}.",
    )
    expect_messages(
        response,
        [
            ("success", "Notifications sent to 1 author."),
            ("warning", "2 authors have no email address and were skipped."),
        ],
        "notify_authors",
        NOTIFY_ADVICE,
    )


@pytest.mark.task(3, points=1)
def test_all_emails_go_out_over_one_connection(editor, django_user_model, settings, mailoutbox):
    expect_action_offered(editor, Article, "notify_authors")
    record_batches(settings)
    articles = []
    for name in ("ada", "bob", "cy"):
        author = django_user_model.objects.create_user(name, email=f"{name}@example.com")
        articles += make_articles(author, 1, title=name)

    post_action(editor, Article, "notify_authors", [a.pk for a in articles])

    batches = [count for _, count in RecordingEmailBackend.batches]
    expect(
        batches == [3],
        f"The 3 emails went out in {len(batches)} send_messages() call(s) of {batches} emails; "
        "the contract is one batch, one call of the default mailer for all 3 (lesson 04, "
        "Task 3). How does the desk's send_overdue_reminders send its reminders?",
    )


@pytest.mark.task(3, points=1)
def test_notify_runs_as_many_queries_for_50_authors_as_for_1(
    editor, django_user_model, mailoutbox
):
    expect_action_offered(editor, Article, "notify_authors")
    authors = django_user_model.objects.bulk_create(
        django_user_model(username=f"author{i}", email=f"author{i}@example.com")
        for i in range(51)
    )
    articles = Article.objects.bulk_create(
        Article(title=f"By {author.username}", author=author) for author in authors
    )
    one = queries_of(
        lambda: post_action(editor, Article, "notify_authors", [articles[0].pk], follow=False)
    )

    with expect_num_queries(
        one,
        info="Notifying 50 authors ran more queries than notifying 1: something is looked up "
        "once per author or per article. The contract is one query for every article with "
        "its author's address (lesson 04, Task 3): how do the desk's reminders get each "
        "member's address in the query that lists the loans?",
    ):
        post_action(editor, Article, "notify_authors", [a.pk for a in articles[1:]], follow=False)
    expect(len(mailoutbox) == 51, f"Expected 51 emails in all, found {len(mailoutbox)}.")


@pytest.mark.task(3, points=2)
def test_a_forged_notify_from_staff_without_the_permission_sends_nothing(
    editor, writer, django_user_model, mailoutbox
):
    expect_action_offered(editor, Article, "notify_authors")
    ada = django_user_model.objects.create_user("ada", email="ada@example.com")
    articles = make_articles(ada, 2)

    post_action(writer, Article, "notify_authors", [a.pk for a in articles])

    expect(
        not mailoutbox,
        f"A writer without the send_notifications permission forged a POST of notify_authors "
        f"and {len(mailoutbox)} email(s) went out; the contract is that nothing is sent. "
        "Django refuses an action to a user who holds none of the permissions it declares, "
        "before your code runs (lesson 04, 'Permissions on an action').",
    )


@pytest.mark.task(3, points=1)
def test_the_forged_notify_is_refused_with_csrf_checks_enforced(
    editor, django_user_model, mailoutbox
):
    expect_action_offered(editor, Article, "notify_authors")
    ada = django_user_model.objects.create_user("ada", email="ada@example.com")
    articles = make_articles(ada, 2)
    writer = Client(enforce_csrf_checks=True)
    login_staff(
        writer, django_user_model, *[f"conditional.{c}" for c in WRITER], username="writer"
    )
    page = writer.get(changelist_url(Article))
    token = dict(parse_page(page).forms[-1]["fields"])["csrfmiddlewaretoken"]

    response = post_action(
        writer, Article, "notify_authors", [a.pk for a in articles], csrfmiddlewaretoken=token
    )

    expect(
        response.status_code == 200 and not mailoutbox,
        f"A writer's forged notify_authors with a valid CSRF token answered "
        f"{response.status_code} and sent {len(mailoutbox)} email(s); it should be refused "
        "by the permission, not by a missing token.",
    )


@pytest.mark.task(3, points=3)
def test_one_bad_address_does_not_break_the_batch(
    editor, django_user_model, settings, mailoutbox
):
    expect_action_offered(editor, Article, "notify_authors")
    batches = record_batches(settings)
    # In primary key order, the order the emails would go out in.
    authors = [
        author_with(django_user_model, "ada", "ada@example.com"),
        author_with(django_user_model, "bob", "bob@example.com"),
        author_with(django_user_model, "eve", HEADER_INJECTION),
        author_with(django_user_model, "carl"),
        author_with(django_user_model, "nora", NO_AT_SIGN),
        author_with(django_user_model, "zoe", "zoe@example.com"),
    ]
    articles = [make_articles(a, 1, title=a.username)[0] for a in authors]
    editor.raise_request_exception = False

    response = post_action(editor, Article, "notify_authors", [a.pk for a in articles])

    sent = sorted(address for m in mailoutbox for address in m.to)
    expect(
        response.status_code == 200,
        f"One author's address holds a newline ({HEADER_INJECTION!r}) and notify_authors "
        f"answered {response.status_code}, after mailing {sent}: a retry would mail them again. "
        "Check every address with Django's validate_email before sending any email, and "
        "leave the invalid ones out.",
    )
    expect(
        sent == ["ada@example.com", "bob@example.com", "zoe@example.com"],
        f"Of 6 authors, ada, bob and zoe have valid addresses, carl none, eve "
        f"{HEADER_INJECTION!r} and nora {NO_AT_SIGN!r}. Emails went to {sent}. "
        "Send to the addresses django.core.validators.validate_email accepts, and no other.",
    )
    expect(
        [count for _, count in batches] == [3],
        f"The 3 valid emails went out in send_messages() calls of {[c for _, c in batches]} "
        "emails; expected one call with all 3. Check the addresses first, then send the "
        "valid emails in one list.",
    )
    expect_messages(
        response,
        [
            ("success", "Notifications sent to 3 authors."),
            ("warning", "1 author has no email address and was skipped."),
            ("warning", "2 authors have an invalid email address and were skipped."),
        ],
        "notify_authors",
        NOTIFY_ADVICE,
    )


@pytest.mark.task(3, points=2)
def test_when_no_address_is_valid_nothing_is_sent_and_nothing_succeeds(
    editor, django_user_model, mailoutbox
):
    expect_action_offered(editor, Article, "notify_authors")
    authors = [
        author_with(django_user_model, "carl"),
        author_with(django_user_model, "dan", DISPLAY_NAME),
        author_with(django_user_model, "fay"),
    ]
    articles = [make_articles(a, 2, title=a.username)[0] for a in authors]

    response = post_action(editor, Article, "notify_authors", [a.pk for a in articles])

    expect(
        not mailoutbox,
        f"No author has a valid address (dan's is {DISPLAY_NAME!r}, which validate_email "
        f"refuses: a name is not an address), yet emails went to "
        f"{[m.to for m in mailoutbox]}.",
    )
    expect_messages(
        response,
        [
            ("warning", "2 authors have no email address and were skipped."),
            ("warning", "1 author has an invalid email address and was skipped."),
        ],
        "notify_authors",
        "Nobody was notified, so no SUCCESS message. " + NOTIFY_ADVICE,
    )


@pytest.mark.task(3, points=1)
def test_notifying_about_articles_deleted_meanwhile_says_so(
    editor, django_user_model, mailoutbox
):
    expect_action_offered(editor, Article, "notify_authors")
    ada = author_with(django_user_model, "ada", "ada@example.com")
    selected = [a.pk for a in make_articles(ada, 2)]
    # Another editor deletes them while this editor's changelist is still open.
    Article.objects.filter(pk__in=selected).delete()

    response = post_action(editor, Article, "notify_authors", selected)

    expect(
        not mailoutbox,
        f"Nothing exists to notify about, yet {len(mailoutbox)} email(s) went out.",
    )
    expect_messages(
        response,
        [(
            "warning",
            "No notifications were sent: "
            "the selected articles no longer exist or no longer match the filters.",
        )],
        "notify_authors",
        "The editor posted 2 articles that were deleted meanwhile: Django calls the action "
        "with an empty queryset. An action that does nothing says so, and why.",
    )
