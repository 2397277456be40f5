"""Graded tests for exercise 04: the same changelist, as four different users.

A superuser; an editor (staff who may view, change, delete and send notifications); a writer
(staff who may view and change); a reader (staff who may only view). Each one loads the
changelist or posts its action form with Django's test client. Run them with:

    pytest exercises/04_conditional
"""

import warnings

import pytest
from django.apps import apps
from django.test import Client

from workbook.testing import (
    RecordingEmailBackend,
    changelist_url,
    expect,
    expect_action_offered,
    expect_message,
    login_staff,
    offered_actions,
    parse_page,
    post_action,
)

Article = apps.get_model("conditional", "Article")
DRAFT, PUBLISHED = Article.Status.DRAFT, Article.Status.PUBLISHED

EDITOR = ["view_article", "change_article", "delete_article", "send_notifications"]
WRITER = ["view_article", "change_article"]
READER = ["view_article"]

pytestmark = pytest.mark.django_db


def staff(django_user_model, codenames, username):
    client = Client()
    login_staff(
        client, django_user_model, *[f"conditional.{c}" for c in codenames], username=username
    )
    return client


@pytest.fixture
def editor(django_user_model):
    return staff(django_user_model, EDITOR, "editor")


@pytest.fixture
def writer(django_user_model):
    return staff(django_user_model, WRITER, "writer")


@pytest.fixture
def reader(django_user_model):
    return staff(django_user_model, READER, "reader")


def make_articles(author, count, title="Article", **fields):
    return Article.objects.bulk_create(
        Article(title=f"{title} {i}", author=author, **fields) for i in range(1, count + 1)
    )


def describe(offered):
    return ", ".join(sorted(offered)) or "no action at all"


# Task 1: Keep delete_selected for superusers


@pytest.mark.task(1, points=2)
def test_superusers_are_offered_every_action(admin_client):
    offered = offered_actions(admin_client, Article)

    expected = {"delete_selected", "make_published", "notify_authors"}
    expect(
        expected <= set(offered),
        f"A superuser should be offered {', '.join(sorted(expected))}; the dropdown holds "
        f"{describe(offered)}. List make_published and notify_authors in ArticleAdmin.actions.",
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
        "Override get_actions() and pop 'delete_selected' for anyone who is not a superuser.",
    )
    deprecated = [str(w.message) for w in caught if "action_location" in str(w.message)]
    expect(
        not deprecated,
        f"Django warned: {deprecated[0] if deprecated else ''}\nIn Django 6.1 the override "
        "reads get_actions(self, request, action_location=ActionLocation.CHANGE_LIST) and "
        "passes action_location on to super().",
    )


@pytest.mark.task(1, points=2)
def test_a_forged_delete_selected_from_staff_deletes_nothing(editor, admin_user):
    articles = make_articles(admin_user, 2)

    # What Django's own confirmation page posts back, forged by a user not offered it.
    post_action(editor, Article, "delete_selected", [a.pk for a in articles], post="yes")

    left = Article.objects.filter(pk__in=[a.pk for a in articles]).count()
    expect(
        left == 2,
        f"An editor forged a POST of delete_selected and {2 - left} articles were deleted. "
        "Taking the action out of get_actions() also makes Django refuse it.",
    )


# Task 2: Publish, for those who may change


@pytest.mark.task(2, points=1)
def test_make_published_is_offered_to_staff_who_may_change(writer):
    expect_action_offered(writer, Article, "make_published", "Mark selected articles as published")


@pytest.mark.task(2, points=1)
def test_staff_who_may_change_can_publish(writer, admin_user):
    expect_action_offered(writer, Article, "make_published")
    articles = make_articles(admin_user, 2)

    response = post_action(writer, Article, "make_published", [a.pk for a in articles])

    expect(
        not Article.objects.filter(status=DRAFT).exists(),
        "The writer's make_published left articles in draft.",
    )
    expect_message(response, "success", "2 articles were marked as published.", "make_published")


@pytest.mark.task(2, points=2)
def test_a_reader_is_offered_no_action_and_changes_nothing(admin_client, reader, admin_user):
    expect_action_offered(admin_client, Article, "make_published")
    articles = make_articles(admin_user, 2)

    offered = offered_actions(reader, Article)
    post_action(reader, Article, "make_published", [a.pk for a in articles])

    expect(
        not set(offered) & {"delete_selected", "make_published", "notify_authors"},
        f"A reader (view permission only) is offered {describe(offered)}. Declare "
        "@admin.action(permissions=['change']) on make_published: Django then asks "
        "has_change_permission(request) before offering it.",
    )
    expect(
        not Article.objects.filter(status=PUBLISHED).exists(),
        "A reader forged a POST of make_published and articles were published.",
    )


# Task 3: Notify the authors, for those who may notify


@pytest.mark.task(3, points=1)
def test_notify_authors_is_offered_to_those_who_may_notify(editor, writer):
    expect_action_offered(editor, Article, "notify_authors", "Send notification to authors")
    offered = offered_actions(writer, Article)
    expect(
        "notify_authors" not in offered,
        "A writer without the send_notifications permission is offered notify_authors. "
        "Declare @admin.action(permissions=['notify']) and write has_notify_permission(), "
        "which checks request.user.has_perm('conditional.send_notifications').",
    )


@pytest.mark.task(3, points=3)
def test_one_email_per_author_listing_their_selected_articles(
    editor, django_user_model, mailoutbox
):
    expect_action_offered(editor, Article, "notify_authors")
    ada = django_user_model.objects.create_user("ada", email="ada@example.com")
    bob = django_user_model.objects.create_user("bob", email="bob@example.com")
    ada_selected = make_articles(ada, 2, title="Ada's")
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
        f"Ada's email should list her 2 selected articles, and only those:\n{to_ada.body}",
    )
    expect_message(response, "success", "Notifications sent to 2 authors.", "notify_authors")


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
    expect_message(response, "success", "Notifications sent to 1 author.", "notify_authors")
    expect_message(
        response, "warning", "2 authors have no email address and were skipped.",
        "notify_authors",
    )


@pytest.mark.task(3, points=1)
def test_all_emails_go_out_over_one_connection(editor, django_user_model, settings, mailoutbox):
    expect_action_offered(editor, Article, "notify_authors")
    settings.MAILERS = {"default": {"BACKEND": "workbook.testing.RecordingEmailBackend"}}
    RecordingEmailBackend.batches.clear()
    articles = []
    for name in ("ada", "bob", "cy"):
        author = django_user_model.objects.create_user(name, email=f"{name}@example.com")
        articles += make_articles(author, 1, title=name)

    post_action(editor, Article, "notify_authors", [a.pk for a in articles])

    batches = [count for _, count in RecordingEmailBackend.batches]
    expect(
        batches == [3],
        f"The 3 emails went out in {len(batches)} send_messages() call(s) of {batches} emails. "
        "Build every EmailMessage first, then send them all with "
        "mailers.default.send_messages(emails): one connection for all.",
    )


@pytest.mark.task(3, points=1)
def test_notify_runs_as_many_queries_for_50_authors_as_for_1(
    editor, django_user_model, mailoutbox, django_assert_num_queries
):
    expect_action_offered(editor, Article, "notify_authors")
    authors = django_user_model.objects.bulk_create(
        django_user_model(username=f"author{i}", email=f"author{i}@example.com")
        for i in range(51)
    )
    articles = Article.objects.bulk_create(
        Article(title=f"By {author.username}", author=author) for author in authors
    )
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as one:
        post_action(editor, Article, "notify_authors", [articles[0].pk], follow=False)

    with django_assert_num_queries(
        len(one),
        info="Notifying 50 authors ran more queries than notifying 1: something is looked up "
        "once per author or per article. Get every address in the query that lists the "
        "articles, e.g. values_list('author', 'author__email', 'title').",
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
        f"and {len(mailoutbox)} email(s) went out. Let the decorator's permissions=['notify'] "
        "refuse it: a check inside the action body is easy to get wrong or forget.",
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
