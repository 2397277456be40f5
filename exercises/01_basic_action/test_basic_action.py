"""Graded tests for exercise 01: they use the admin as a logged-in user does.

Each test opens or posts the Article changelist with Django's test client, as a superuser or
as a staff user holding only some permissions, then checks the rows in the database and the
messages on the page. Run them with:

    pytest exercises/01_basic_action
"""

from datetime import UTC, datetime

import pytest
from django.apps import apps
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from workbook.testing import (
    expect,
    expect_action_offered,
    expect_num_queries,
    listed_differences,
    login_staff,
    messages_of,
    offered_actions,
    post_action,
    statement_kinds,
)

Article = apps.get_model("basic_action", "Article")
DRAFT, PUBLISHED = Article.Status.DRAFT, Article.Status.PUBLISHED
LAUNCH_DAY = datetime(2024, 5, 1, 9, 30, tzinfo=UTC)
NOTHING_FOUND = (
    "No articles were changed: the selected articles no longer exist or no longer match "
    "the filters."
)

pytestmark = pytest.mark.django_db


def make_articles(author, count, status=DRAFT, pub_date=None, title="Article"):
    return Article.objects.bulk_create(
        Article(title=f"{title} {i}", status=status, pub_date=pub_date, author=author)
        for i in range(1, count + 1)
    )


def statuses(articles):
    return {a.pk: Article.objects.get(pk=a.pk).status for a in articles}


ONE_MESSAGE = (
    "One run, one message: a SUCCESS when rows changed, a WARNING when none did, never both, "
    "never none. The task's table in lesson 01 gives each text and level; 'Telling the "
    "user' shows how the desk words a count for one and for many. Which path of your "
    "action shows no message, or two?"
)


def expect_messages(response, expected, action, advice=ONE_MESSAGE):
    """Fail unless the page shows exactly the messages `expected`, [(level, text), ...]."""
    __tracebackhide__ = True
    shown = messages_of(response)

    def listing(messages):
        return "\n".join(f"  [{tag}] {text}" for tag, text in messages) or "  (no message)"

    expect(
        shown == expected,
        f"After running '{action}' the changelist should show exactly:\n{listing(expected)}\n"
        f"It shows:\n{listing(shown)}\nWhat differs:\n{listed_differences(expected, shown)}"
        f"{advice}",
    )


def queries_for(client, action, selected):
    """How many SQL queries one action POST runs (the page it redirects to not included)."""
    with CaptureQueriesContext(connection) as queries:
        post_action(client, Article, action, selected, follow=False)
    return len(queries)


def statements_on_articles(client, action, selected):
    """What the action itself ran on the article table (see statement_kinds)."""
    return statement_kinds(client, Article, action, selected)


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
        f"An article published without a pub_date got pub_date={undated.pub_date}; the "
        f"contract is the moment it was published, between {before} and {after} here. "
        "Is what you store a moment, or only a day?",
    )
    expect(
        dated.pub_date == LAUNCH_DAY,
        f"An article that already had pub_date={LAUNCH_DAY} now has {dated.pub_date}. Keep a "
        "date that is set, in the same UPDATE: lesson 01's renew_loans does it for renewed_on.",
    )


@pytest.mark.task(1, points=2)
def test_make_published_runs_as_many_queries_for_500_rows_as_for_1(
    admin_client, admin_user
):
    expect_action_offered(admin_client, Article, "make_published")
    articles = make_articles(admin_user, 501)
    one = queries_for(admin_client, "make_published", [articles[0].pk])

    with expect_num_queries(
        one,
        info="make_published ran more SQL queries for 500 articles than for 1: something "
        "runs once per article. The contract is one UPDATE whatever the selection: how does "
        "the desk's renew_loans change every selected loan in one statement (lesson 01, 'The "
        "worked example')?",
    ):
        post_action(
            admin_client, Article, "make_published", [a.pk for a in articles[1:]],
            follow=False,
        )
    still_drafts = Article.objects.filter(status=DRAFT).count()
    expect(still_drafts == 0, f"{still_drafts} of the 501 selected articles are still drafts.")


@pytest.mark.task(1, points=1)
def test_make_published_changes_rows_with_one_update_and_no_select(admin_client, admin_user):
    expect_action_offered(admin_client, Article, "make_published")
    drafts = make_articles(admin_user, 3)
    (published,) = make_articles(admin_user, 1, status=PUBLISHED, pub_date=LAUNCH_DAY)

    kinds, listing = statements_on_articles(
        admin_client, "make_published", [a.pk for a in [*drafts, published]]
    )

    expect(
        kinds == ["UPDATE"],
        "make_published was run on 3 drafts and 1 published article. On the article table "
        f"it ran:\n{listing}\nThe contract on the path that changes rows is one UPDATE and "
        "nothing else: no SELECT and no COUNT of articles (lesson 01, Task 1). Which number "
        "does that UPDATE already give you?",
    )
    expect(
        statuses(drafts) == {a.pk: PUBLISHED for a in drafts},
        "make_published ran one UPDATE, but the 3 selected drafts are not all published.",
    )


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

    expect_messages(
        response, [("success", "1 article was marked as published.")], "make_published"
    )


@pytest.mark.task(2, points=1)
def test_publishing_three_articles_says_so_in_the_plural(admin_client, admin_user):
    expect_action_offered(admin_client, Article, "make_published")
    articles = make_articles(admin_user, 3)

    response = post_action(admin_client, Article, "make_published", [a.pk for a in articles])

    expect_messages(
        response, [("success", "3 articles were marked as published.")], "make_published"
    )


@pytest.mark.task(2, points=1)
def test_the_count_is_of_articles_that_really_changed(admin_client, admin_user):
    expect_action_offered(admin_client, Article, "make_published")
    drafts = make_articles(admin_user, 2)
    (published,) = make_articles(admin_user, 1, status=PUBLISHED, pub_date=LAUNCH_DAY)

    response = post_action(
        admin_client, Article, "make_published", [a.pk for a in [*drafts, published]]
    )

    expect_messages(
        response, [("success", "2 articles were marked as published.")], "make_published"
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

    expect_messages(response, [("warning", text)], "make_published")
    expect(
        all(Article.objects.get(pk=a.pk).pub_date == LAUNCH_DAY for a in articles),
        "Publishing articles that were already published changed their pub_date; the "
        "contract is that they keep it (lesson 01, Task 2). Which rows does your UPDATE "
        "touch?",
    )


@pytest.mark.task(2, points=1)
@pytest.mark.parametrize("count", [1, 2], ids=["one", "two"])
def test_publishing_articles_deleted_meanwhile_warns_that_they_are_gone(
    admin_client, admin_user, count
):
    expect_action_offered(admin_client, Article, "make_published")
    gone = make_articles(admin_user, count, title="Gone")
    (bystander,) = make_articles(admin_user, 1, title="Not selected")
    # The user ticked the rows, then someone else deleted them before Run was pressed.
    Article.objects.filter(pk__in=[a.pk for a in gone]).delete()

    response = post_action(admin_client, Article, "make_published", [a.pk for a in gone])

    expect_messages(response, [("warning", NOTHING_FOUND)], "make_published")
    bystander.refresh_from_db()
    expect(
        bystander.status == DRAFT,
        "An article nobody selected was published. Work on the queryset argument only.",
    )


@pytest.mark.task(2, points=1)
def test_publishing_articles_that_left_the_search_changes_nothing_and_says_why(
    admin_client, admin_user
):
    expect_action_offered(admin_client, Article, "make_published")
    articles = make_articles(admin_user, 2, title="Django tip")
    # The user searched for "Django" and ticked both; meanwhile an editor renamed them.
    Article.objects.filter(pk__in=[a.pk for a in articles]).update(title="Flask tip")

    response = post_action(
        admin_client, Article, "make_published", [a.pk for a in articles], query="q=Django"
    )

    expect(
        set(statuses(articles).values()) == {DRAFT},
        "Selected articles that no longer match the changelist's search were published. "
        "Django hands your action the selected rows that still match the filters and "
        "search of the page: use that queryset, not the posted ids.",
    )
    expect_messages(response, [("warning", NOTHING_FOUND)], "make_published")


@pytest.mark.task(2, points=1)
def test_publishing_that_changes_nothing_runs_one_update_and_one_count(
    admin_client, admin_user
):
    expect_action_offered(admin_client, Article, "make_published")
    published = make_articles(admin_user, 2, status=PUBLISHED, pub_date=LAUNCH_DAY)
    gone = make_articles(admin_user, 2, title="Gone")
    Article.objects.filter(pk__in=[a.pk for a in gone]).delete()

    for what, selected in (("2 published articles", published), ("2 deleted articles", gone)):
        kinds, listing = statements_on_articles(
            admin_client, "make_published", [a.pk for a in selected]
        )
        expect(
            sorted(kinds) == ["COUNT", "UPDATE"],
            f"make_published was run on {what}: nothing to change. On the article table it "
            f"ran:\n{listing}\nThe contract when nothing changed is the UPDATE (matching no "
            "row) and one COUNT of the selection, nothing else (lesson 01, Task 2). Once the "
            "UPDATE changed nothing, what does a count of the selection tell you?",
        )


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
    expect_messages(response, [("success", "2 articles were marked as draft.")], "make_draft")


@pytest.mark.task(3, points=1)
def test_make_draft_of_one_article_says_so_in_the_singular(admin_client, admin_user):
    expect_action_offered(admin_client, Article, "make_draft")
    (article,) = make_articles(admin_user, 1, status=PUBLISHED, pub_date=LAUNCH_DAY)
    (draft,) = make_articles(admin_user, 1, title="Already a draft")

    response = post_action(admin_client, Article, "make_draft", [article.pk, draft.pk])

    expect_messages(response, [("success", "1 article was marked as draft.")], "make_draft")


@pytest.mark.task(3, points=1)
@pytest.mark.parametrize(
    ("count", "text"),
    [
        (1, "No articles were changed: the 1 selected was already a draft."),
        (2, "No articles were changed: the 2 selected were already drafts."),
    ],
    ids=["one", "two"],
)
def test_make_draft_of_drafts_only_warns(admin_client, admin_user, count, text):
    expect_action_offered(admin_client, Article, "make_draft")
    articles = make_articles(admin_user, count)

    response = post_action(admin_client, Article, "make_draft", [a.pk for a in articles])

    expect_messages(response, [("warning", text)], "make_draft")


@pytest.mark.task(3, points=1)
@pytest.mark.parametrize("count", [1, 2], ids=["one", "two"])
def test_make_draft_of_articles_deleted_meanwhile_warns_that_they_are_gone(
    admin_client, admin_user, count
):
    expect_action_offered(admin_client, Article, "make_draft")
    gone = make_articles(admin_user, count, status=PUBLISHED, pub_date=LAUNCH_DAY)
    # The user ticked the rows, then someone else deleted them before Run was pressed.
    Article.objects.filter(pk__in=[a.pk for a in gone]).delete()

    response = post_action(admin_client, Article, "make_draft", [a.pk for a in gone])

    expect_messages(response, [("warning", NOTHING_FOUND)], "make_draft")


@pytest.mark.task(3, points=1)
def test_make_draft_runs_as_many_queries_for_500_rows_as_for_1(
    admin_client, admin_user
):
    expect_action_offered(admin_client, Article, "make_draft")
    articles = make_articles(admin_user, 501, status=PUBLISHED, pub_date=LAUNCH_DAY)
    one = queries_for(admin_client, "make_draft", [articles[0].pk])

    with expect_num_queries(
        one,
        info="make_draft ran more SQL queries for 500 articles than for 1: something runs "
        "once per article. The contract is one UPDATE whatever the selection, as for "
        "make_published (lesson 01, Task 3).",
    ):
        post_action(
            admin_client, Article, "make_draft", [a.pk for a in articles[1:]], follow=False
        )
    expect(
        not Article.objects.filter(status=PUBLISHED).exists(),
        "Some of the 501 selected articles are still published.",
    )


@pytest.mark.task(3, points=1)
def test_make_draft_runs_one_update_and_counts_only_when_nothing_changed(
    admin_client, admin_user
):
    expect_action_offered(admin_client, Article, "make_draft")
    published = make_articles(admin_user, 2, status=PUBLISHED, pub_date=LAUNCH_DAY)
    drafts = make_articles(admin_user, 2, title="Draft")

    for what, selected, expected, contract in (
        ("2 published articles and 2 drafts", published + drafts, ["UPDATE"],
         "one UPDATE and nothing else: no SELECT and no COUNT of articles"),
        ("2 drafts", drafts, ["COUNT", "UPDATE"],
         "the UPDATE (matching no row) and one COUNT of the selection, nothing else"),
    ):
        kinds, listing = statements_on_articles(
            admin_client, "make_draft", [a.pk for a in selected]
        )
        expect(
            sorted(kinds) == expected,
            f"make_draft was run on {what}. On the article table it ran:\n{listing}\n"
            f"The contract here is {contract}, as for make_published (lesson 01, Task 3).",
        )


# Task 4: Only for those who may change articles

ACTIONS = {"make_published": PUBLISHED, "make_draft": DRAFT}


def articles_to_change(author, action):
    """Two articles `action` would change: drafts to publish, or published ones to unpublish."""
    if action == "make_published":
        return make_articles(author, 2)
    return make_articles(author, 2, status=PUBLISHED, pub_date=LAUNCH_DAY)


@pytest.mark.task(4, points=2)
def test_staff_who_may_only_view_are_offered_neither_action(
    admin_client, client, django_user_model
):
    for action in ACTIONS:
        expect_action_offered(admin_client, Article, action)
    login_staff(client, django_user_model, "basic_action.view_article", username="reader")

    offered = set(offered_actions(client, Article)) & set(ACTIONS)

    expect(
        not offered,
        f"A staff user who may only view articles is offered {sorted(offered)}; the contract "
        "is neither action for them (lesson 01, Task 4). An action that declares no "
        "permission is offered to everyone who can see the changelist: how does the desk's "
        "renew_loans say who may run it ('Who may run an action')?",
    )


@pytest.mark.task(4, points=1)
@pytest.mark.parametrize("action", ACTIONS)
def test_a_forged_post_from_staff_who_may_only_view_changes_nothing(
    admin_client, client, django_user_model, admin_user, action
):
    expect_action_offered(admin_client, Article, action)
    articles = articles_to_change(admin_user, action)
    before = statuses(articles)
    login_staff(client, django_user_model, "basic_action.view_article", username="reader")

    # The reader cannot pick the action in the dropdown, but can post the form by hand.
    response = post_action(client, Article, action, [a.pk for a in articles])

    expect(
        statuses(articles) == before,
        f"A staff user who may only view articles posted '{action}' by hand, and the "
        f"statuses went from {list(before.values())} to {list(statuses(articles).values())}; "
        "the contract is that nothing changes. When the action declares who may run it, "
        "Django refuses it to this user before your code runs (lesson 01, 'Who may run an "
        "action').",
    )
    expect_messages(
        response, [], action,
        "A user offered no action at all gets the changelist again and no message: Django "
        "ignores the action fields and your code never runs. Does your action check the "
        "user itself, instead of declaring who may run it (lesson 01, 'Who may run an "
        "action')?",
    )


@pytest.mark.task(4, points=1)
@pytest.mark.parametrize("action", ACTIONS)
def test_a_forged_post_from_staff_who_may_view_and_delete_gets_no_action_selected(
    admin_client, client, django_user_model, admin_user, action
):
    expect_action_offered(admin_client, Article, action)
    articles = articles_to_change(admin_user, action)
    before = statuses(articles)
    login_staff(
        client, django_user_model, "basic_action.view_article", "basic_action.delete_article",
        username="moderator",
    )

    # Offered delete_selected only, the moderator posts the other action's name by hand.
    response = post_action(client, Article, action, [a.pk for a in articles])

    expect(
        statuses(articles) == before,
        f"A staff user who may view and delete articles, but not change them, posted "
        f"'{action}' by hand and the statuses changed. Changing articles takes the change "
        "permission, not any permission: which one does your action declare (lesson 01, "
        "'Who may run an action')?",
    )
    expect_messages(
        response, [("warning", "No action selected.")], action,
        "That WARNING alone is Django's answer to an action name it does not offer this "
        "user, before your code runs (lesson 01, 'Who may run an action'). Does your action "
        "check the user itself, instead of declaring who may run it?",
    )


@pytest.mark.task(4, points=2)
def test_staff_who_may_change_are_offered_both_and_can_run_them(
    client, django_user_model, admin_user
):
    login_staff(client, django_user_model, "basic_action.change_article", username="editor")
    for action in ACTIONS:
        expect_action_offered(client, Article, action)
    articles = make_articles(admin_user, 2)

    published = post_action(client, Article, "make_published", [a.pk for a in articles])
    expect(
        set(statuses(articles).values()) == {PUBLISHED},
        "A staff user who may change articles ran make_published, and the articles are "
        f"{list(statuses(articles).values())}, not published.",
    )
    expect_messages(
        published, [("success", "2 articles were marked as published.")], "make_published"
    )

    drafted = post_action(client, Article, "make_draft", [a.pk for a in articles])
    expect(
        set(statuses(articles).values()) == {DRAFT},
        "A staff user who may change articles ran make_draft, and the articles are "
        f"{list(statuses(articles).values())}, not drafts.",
    )
    expect_messages(drafted, [("success", "2 articles were marked as draft.")], "make_draft")
