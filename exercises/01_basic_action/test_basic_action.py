"""Graded tests for exercise 01: they use the admin as a logged-in superuser does.

Each test opens or posts the Article changelist with Django's test client, then checks the
rows in the database and the message on the page. Run them with:

    pytest exercises/01_basic_action
"""

from datetime import UTC, datetime

import pytest
from django.apps import apps
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from workbook.testing import expect, expect_action_offered, expect_message, post_action

Article = apps.get_model("basic_action", "Article")
DRAFT, PUBLISHED = Article.Status.DRAFT, Article.Status.PUBLISHED
LAUNCH_DAY = datetime(2024, 5, 1, 9, 30, tzinfo=UTC)

pytestmark = pytest.mark.django_db


def make_articles(author, count, status=DRAFT, pub_date=None, title="Article"):
    return Article.objects.bulk_create(
        Article(title=f"{title} {i}", status=status, pub_date=pub_date, author=author)
        for i in range(1, count + 1)
    )


def statuses(articles):
    return {a.pk: Article.objects.get(pk=a.pk).status for a in articles}


def queries_for(client, action, selected):
    """How many SQL queries one action POST runs (the page it redirects to not included)."""
    with CaptureQueriesContext(connection) as queries:
        post_action(client, Article, action, selected, follow=False)
    return len(queries)


# Task 1: Publish the selected articles


@pytest.mark.task(1, points=1)
def test_make_published_is_offered_in_the_dropdown(admin_client):
    expect_action_offered(
        admin_client, Article, "make_published", "Mark selected articles as published"
    )


@pytest.mark.task(1, points=2)
def test_make_published_publishes_only_the_selected_articles(admin_client, admin_user):
    expect_action_offered(admin_client, Article, "make_published")
    first, second, third = make_articles(admin_user, 3)

    post_action(admin_client, Article, "make_published", [first.pk, second.pk])

    result = statuses([first, second, third])
    expect(
        result[first.pk] == PUBLISHED and result[second.pk] == PUBLISHED,
        f"After make_published on 2 selected drafts their statuses are "
        f"{[result[first.pk], result[second.pk]]}; both should be 'published'. "
        "Change the queryset the action receives: it holds exactly the selected rows.",
    )
    expect(
        result[third.pk] == DRAFT,
        "make_published also changed an article that was not selected. Work on the "
        "queryset argument only, never on Article.objects.",
    )


@pytest.mark.task(1, points=2)
def test_make_published_sets_a_missing_pub_date_and_keeps_an_existing_one(
    admin_client, admin_user
):
    expect_action_offered(admin_client, Article, "make_published")
    (undated,) = make_articles(admin_user, 1, title="Undated")
    (dated,) = make_articles(admin_user, 1, pub_date=LAUNCH_DAY, title="Dated")

    before = timezone.now()
    post_action(admin_client, Article, "make_published", [undated.pk, dated.pk])
    after = timezone.now()

    undated.refresh_from_db()
    dated.refresh_from_db()
    expect(
        undated.status == PUBLISHED and dated.status == PUBLISHED,
        "make_published should publish both selected drafts.",
    )
    expect(
        undated.pub_date is not None and before <= undated.pub_date <= after,
        f"An article published without a pub_date got pub_date={undated.pub_date}; it "
        "should be the moment of publishing (timezone.now()).",
    )
    expect(
        dated.pub_date == LAUNCH_DAY,
        f"An article that already had pub_date={LAUNCH_DAY} now has {dated.pub_date}. Keep a "
        "date that is set: Coalesce('pub_date', Value(now)) does both in one UPDATE.",
    )


@pytest.mark.task(1, points=2)
def test_make_published_runs_as_many_queries_for_500_rows_as_for_1(
    admin_client, admin_user, django_assert_num_queries
):
    expect_action_offered(admin_client, Article, "make_published")
    articles = make_articles(admin_user, 501)
    one = queries_for(admin_client, "make_published", [articles[0].pk])

    with django_assert_num_queries(
        one,
        info="make_published ran more SQL queries for 500 articles than for 1: it touches "
        "rows one by one. Change them all with one queryset.update(...).",
    ):
        post_action(
            admin_client, Article, "make_published", [a.pk for a in articles[1:]],
            follow=False,
        )
    still_drafts = Article.objects.filter(status=DRAFT).count()
    expect(still_drafts == 0, f"{still_drafts} of the 501 selected articles are still drafts.")


@pytest.mark.task(1, points=2)
def test_make_published_with_select_all_on_a_filtered_changelist(admin_client, admin_user):
    expect_action_offered(admin_client, Article, "make_published")
    django = make_articles(admin_user, 3, title="Django tip")
    flask = make_articles(admin_user, 2, title="Flask tip")

    # "Select all 3" on the changelist searched for "Django" and filtered to drafts:
    # one box ticked on the page, select_across=1, and the filters stay in the URL.
    post_action(
        admin_client, Article, "make_published", [django[0].pk],
        select_across=True, query="q=Django&status__exact=draft",
    )

    expect(
        set(statuses(django).values()) == {PUBLISHED},
        "With 'select all' on a filtered changelist, every article matching the filters "
        f"should be published; got {list(statuses(django).values())}.",
    )
    expect(
        set(statuses(flask).values()) == {DRAFT},
        "Articles outside the search were published too: use the queryset you are given.",
    )


# Task 2: Tell the user what happened


@pytest.mark.task(2, points=1)
def test_publishing_one_article_says_so_in_the_singular(admin_client, admin_user):
    expect_action_offered(admin_client, Article, "make_published")
    (article,) = make_articles(admin_user, 1)

    response = post_action(admin_client, Article, "make_published", [article.pk])

    expect_message(response, "success", "1 article was marked as published.", "make_published")


@pytest.mark.task(2, points=1)
def test_publishing_three_articles_says_so_in_the_plural(admin_client, admin_user):
    expect_action_offered(admin_client, Article, "make_published")
    articles = make_articles(admin_user, 3)

    response = post_action(admin_client, Article, "make_published", [a.pk for a in articles])

    expect_message(
        response, "success", "3 articles were marked as published.", "make_published"
    )


@pytest.mark.task(2, points=1)
def test_the_count_is_of_articles_that_really_changed(admin_client, admin_user):
    expect_action_offered(admin_client, Article, "make_published")
    drafts = make_articles(admin_user, 2)
    (published,) = make_articles(admin_user, 1, status=PUBLISHED, pub_date=LAUNCH_DAY)

    response = post_action(
        admin_client, Article, "make_published", [a.pk for a in [*drafts, published]]
    )

    expect_message(
        response, "success", "2 articles were marked as published.", "make_published"
    )


@pytest.mark.task(2, points=1)
@pytest.mark.parametrize(
    ("count", "text"),
    [
        (1, "No articles were changed: the 1 selected was already published."),
        (2, "No articles were changed: the 2 selected were already published."),
    ],
    ids=["one", "two"],
)
def test_publishing_only_published_articles_warns(admin_client, admin_user, count, text):
    expect_action_offered(admin_client, Article, "make_published")
    articles = make_articles(admin_user, count, status=PUBLISHED, pub_date=LAUNCH_DAY)

    response = post_action(admin_client, Article, "make_published", [a.pk for a in articles])

    expect_message(response, "warning", text, "make_published")


# Task 3: Send articles back to draft


@pytest.mark.task(3, points=1)
def test_make_draft_is_offered_in_the_dropdown(admin_client):
    expect_action_offered(admin_client, Article, "make_draft", "Mark selected articles as draft")


@pytest.mark.task(3, points=2)
def test_make_draft_unpublishes_the_selected_articles_and_keeps_pub_date(
    admin_client, admin_user
):
    expect_action_offered(admin_client, Article, "make_draft")
    first, second, third = make_articles(admin_user, 3, status=PUBLISHED, pub_date=LAUNCH_DAY)

    response = post_action(admin_client, Article, "make_draft", [first.pk, second.pk])

    expect(
        statuses([first, second, third]) == {first.pk: DRAFT, second.pk: DRAFT, third.pk: PUBLISHED},
        f"After make_draft on 2 of 3 published articles the statuses are "
        f"{list(statuses([first, second, third]).values())}; expected draft, draft, published.",
    )
    first.refresh_from_db()
    expect(
        first.pub_date == LAUNCH_DAY,
        f"make_draft changed pub_date from {LAUNCH_DAY} to {first.pub_date}: leave it alone.",
    )
    expect_message(response, "success", "2 articles were marked as draft.", "make_draft")


@pytest.mark.task(3, points=1)
def test_make_draft_of_one_article_says_so_in_the_singular(admin_client, admin_user):
    expect_action_offered(admin_client, Article, "make_draft")
    (article,) = make_articles(admin_user, 1, status=PUBLISHED, pub_date=LAUNCH_DAY)

    response = post_action(admin_client, Article, "make_draft", [article.pk])

    expect_message(response, "success", "1 article was marked as draft.", "make_draft")


@pytest.mark.task(3, points=1)
def test_make_draft_of_drafts_only_warns(admin_client, admin_user):
    expect_action_offered(admin_client, Article, "make_draft")
    articles = make_articles(admin_user, 2)

    response = post_action(admin_client, Article, "make_draft", [a.pk for a in articles])

    expect_message(
        response, "warning", "No articles were changed: the 2 selected were already drafts.",
        "make_draft",
    )


@pytest.mark.task(3, points=1)
def test_make_draft_runs_as_many_queries_for_500_rows_as_for_1(
    admin_client, admin_user, django_assert_num_queries
):
    expect_action_offered(admin_client, Article, "make_draft")
    articles = make_articles(admin_user, 501, status=PUBLISHED, pub_date=LAUNCH_DAY)
    one = queries_for(admin_client, "make_draft", [articles[0].pk])

    with django_assert_num_queries(
        one,
        info="make_draft ran more SQL queries for 500 articles than for 1. Change them all "
        "with one queryset.update(...).",
    ):
        post_action(
            admin_client, Article, "make_draft", [a.pk for a in articles[1:]], follow=False
        )
    expect(
        not Article.objects.filter(status=PUBLISHED).exists(),
        "Some of the 501 selected articles are still published.",
    )
