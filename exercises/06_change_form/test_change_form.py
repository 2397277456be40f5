"""Graded tests for exercise 06: actions on an article's own page, and on the changelist.

The tests open an article's change page as a browser does, pick an action in the page's
dropdown and press Run, or post a forged form by hand. Four users: a superuser; an editor
(staff who may view, add, change and delete articles); a writer (view and change); a reader
(view only). Run them with:

    pytest exercises/06_change_form
"""

import warnings
from datetime import timedelta

import pytest
from django.apps import apps
from django.contrib.admin.models import ADDITION, LogEntry
from django.db import IntegrityError, connection
from django.utils import timezone
from django.utils.deprecation import RemovedInDjango2028Warning

from workbook.testing import (
    OLD_GET_ACTIONS,
    PLURAL_MIXED_UP,
    _send,
    change_form_actions,
    change_page,
    change_url,
    changelist_url,
    choose_action,
    expect,
    expect_action_offered,
    message_differences,
    messages_of,
    offered_actions,
    post_action,
    post_change_form_action,
    press,
    refusals_unlogged,
    run_on_change_page,
    staff_client,
    statement_kinds,
)

Article = apps.get_model("change_form", "Article")
Tag = apps.get_model("change_form", "Tag")
DRAFT, PUBLISHED = Article.Status.DRAFT, Article.Status.PUBLISHED

EDITOR = ["view_article", "add_article", "change_article", "delete_article"]
WRITER = ["view_article", "change_article"]
READER = ["view_article"]

HOLDS = {
    "superuser": "every permission",
    "editor": "view, add, change, delete",
    "writer": "view, change",
    "reader": "view",
}
ALL_ON_THE_PAGE = {"publish", "unpublish", "duplicate_as_draft"}
FILTERS = "_changelist_filters=status%3Ddraft"

pytestmark = pytest.mark.django_db


@pytest.fixture
def editor(django_user_model):
    return staff_client(django_user_model, "change_form", EDITOR, "editor")


@pytest.fixture
def writer(django_user_model):
    return staff_client(django_user_model, "change_form", WRITER, "writer")


@pytest.fixture
def reader(django_user_model):
    return staff_client(django_user_model, "change_form", READER, "reader")


@pytest.fixture
def author(django_user_model):
    return django_user_model.objects.create_user("author", email="author@example.com")


@pytest.fixture
def make(author):
    def make(title, status=DRAFT, pub_date=None, **fields):
        return Article.objects.create(
            title=title, status=status, pub_date=pub_date, author=author, **fields
        )

    return make


def listing(messages):
    return "\n".join(f"  [{tag}] {text}" for tag, text in messages) or "  (no message)"


BOTH_PAGES = "The lesson's task 1 gives each message, and its level."
WHICH_FORM = (
    " The same function words a count of one on the change page and a count of many on the "
    "changelist: which function picks the form?"
)
PAGE_ONLY = "The lesson's task 2 gives each message, and its level."


def expect_messages(response, expected, action, page="the change page", advice=BOTH_PAGES):
    """Fail unless the page the response ended on shows exactly the messages `expected`.
    The question about the function that picks singular or plural comes only when those
    forms are what differs, and only under task 1, whose messages both pages show: a message
    without a count is one text, and the failure says what was shown instead."""
    __tracebackhide__ = True
    shown = messages_of(response)
    differences = message_differences(expected, shown)
    if advice == BOTH_PAGES and any(note.startswith(PLURAL_MIXED_UP) for note in differences):
        advice += WHICH_FORM
    expect(
        shown == expected,
        f"After running '{action}', {page} should show exactly:\n{listing(expected)}\n"
        f"It shows:\n{listing(shown)}\nWhat differs:\n"
        + "".join(f"  - {note}\n" for note in differences)
        + advice,
    )


def expect_back_on_the_page(response, url, action):
    """Fail unless the action answered with a redirect to exactly `url`, the page it ran on."""
    __tracebackhide__ = True
    where = response.url if response.status_code == 302 else None
    expect(
        where == url,
        f"Running '{action}' from the change page {url} answered {response.status_code}"
        + (f", a redirect to {where}" if where else "")
        + f"; expected a redirect back to {url} itself, query string included, so that the "
        "user sees the message where they pressed Run. What does Django do after an action "
        "that returns None?",
    )


def follow(client, response):
    """The page a redirect leads to, as the browser loads it next."""
    return _send("Loading the page the action redirected to", client.get, response.url)


def refreshed(*objects):
    for obj in objects:
        obj.refresh_from_db()


def expect_unchanged(before, what):
    """Fail unless every article is as in `before` (a snapshot()) and none was added."""
    __tracebackhide__ = True
    after = snapshot()
    expect(
        after == before,
        f"{what} changed the data"
        + (": a new article exists" if len(after) > len(before) else "")
        + ". Nothing may change.",
    )


def snapshot():
    return {a.pk: (a.status, a.pub_date) for a in Article.objects.all()}


# Task 1: Publish, from the list or from the page


@pytest.mark.task(1, points=3)
def test_publish_is_offered_on_the_changelist_and_on_the_change_page_with_its_two_labels(
    admin_client, make
):
    article = make("Launch day")
    expect_action_offered(admin_client, Article, "publish", "Publish selected articles")
    page_actions = change_form_actions(change_page(admin_client, article))
    expect(
        page_actions.get("publish") == "Publish this article",
        "The change page's dropdown should offer 'publish' as 'Publish this article'; it offers "
        f"{page_actions or 'nothing'}. Which argument of @admin.action labels an action for "
        "one object, which for the list, and which puts it on the change form? "
        + OLD_GET_ACTIONS,
    )
    add_page = _send("Loading the add page", admin_client.get,
                     changelist_url(Article).replace("/article/", "/article/add/"))
    popup = change_page(admin_client, article, query="_popup=1")
    expect(
        add_page.context["action_form"] is None and popup.context["action_form"] is None,
        "The add page and a popup's change page must show no action bar: an action runs on "
        "a saved article, in the page the user is working in.",
    )


@pytest.mark.task(1, points=3)
def test_publish_from_the_change_page_publishes_that_article_and_comes_back_to_it(
    admin_client, make
):
    article, other = make("Launch day"), make("Not this one")
    url = change_url(article, FILTERS)
    response = run_on_change_page(admin_client, article, "publish", query=FILTERS)
    expect_back_on_the_page(response, url, "publish")
    refreshed(article, other)
    expect(
        article.status == PUBLISHED and article.pub_date is not None,
        f"After 'publish' on its page the article is {article.status!r} with pub_date "
        f"{article.pub_date}: it should be published, dated now.",
    )
    expect(
        abs(timezone.now() - article.pub_date) < timedelta(minutes=5),
        f"The new pub_date is {article.pub_date}: a draft that never went out is dated now.",
    )
    expect(other.status == DRAFT,
           "Publishing from one article's page published another article too.")
    expect_messages(follow(admin_client, response), [("success", "1 article was published.")],
                    "publish")


@pytest.mark.task(1, points=2)
def test_publish_keeps_a_date_the_article_already_has_and_says_when_nothing_changed(
    admin_client, make
):
    first_out = timezone.now() - timedelta(days=30)
    returning = make("Back again", pub_date=first_out)
    response = run_on_change_page(admin_client, returning, "publish")
    refreshed(returning)
    expect(
        returning.status == PUBLISHED and returning.pub_date == first_out,
        f"A draft that went out before ({first_out:%Y-%m-%d}) is now {returning.status!r} "
        f"with pub_date {returning.pub_date}: it should be published and keep its date.",
    )
    expect_messages(follow(admin_client, response), [("success", "1 article was published.")],
                    "publish")
    response = run_on_change_page(admin_client, returning, "publish")
    refreshed(returning)
    expect(returning.pub_date == first_out,
           "Publishing an article that is already published changed its pub_date.")
    expect_messages(
        follow(admin_client, response),
        [("warning", "No articles were published: none of the selected articles is a draft.")],
        "publish",
    )


@pytest.mark.task(1, points=2)
def test_publish_from_the_changelist_publishes_the_selected_drafts_in_one_update(
    admin_client, make
):
    earlier = timezone.now() - timedelta(days=3)
    drafts = [make(f"Draft {n}") for n in range(3)]
    live = make("Live", status=PUBLISHED, pub_date=earlier)
    untouched = make("Not selected")
    response = post_action(admin_client, Article, "publish", [a.pk for a in [*drafts, live]])
    refreshed(*drafts, live, untouched)
    expect(
        all(a.status == PUBLISHED for a in drafts) and untouched.status == DRAFT
        and live.pub_date == earlier,
        "From the changelist, 'publish' should publish the selected drafts, leave the "
        "published one as it was and leave the unselected draft alone.",
    )
    expect_messages(response, [("success", "3 articles were published.")], "publish",
                    page="the changelist")
    kinds, statements = statement_kinds(
        admin_client, Article, "publish", [a.pk for a in [make(f"More {n}") for n in range(25)]]
    )
    expect(
        kinds == ["UPDATE"],
        "Publishing 25 drafts should run one UPDATE on the article table and nothing else, "
        f"whatever the selection's size; it ran:\n{statements}\nWhich queryset method changes "
        "every selected row in one statement?",
    )


@pytest.mark.task(1, points=2)
def test_the_save_buttons_win_over_an_action_picked_in_the_same_form(admin_client, make):
    article = make("Typo in the titel")
    _, url, fields = choose_action(admin_client, article, "publish")
    fields = [(n, "Typo fixed" if n == "title" else v) for n, v in fields]
    response = press(admin_client, url, fields, "_save")
    refreshed(article)
    expect(
        article.title == "Typo fixed" and article.status == DRAFT,
        "With 'publish' picked in the dropdown and Save pressed, Django saves the form and "
        f"runs no action; here the article reads {article.title!r}, {article.status!r}. Does "
        "your ModelAdmin override a view or response_change() to run actions itself?",
    )
    expect(response.status_code == 302 and response.url.startswith(changelist_url(Article)),
           "Save should lead back to the changelist, as Django's own Save does.")


# Task 2: Unpublish, from the page only


@pytest.mark.task(2, points=3)
def test_unpublish_is_offered_on_the_change_page_only(admin_client, make):
    article = make("Live", status=PUBLISHED, pub_date=timezone.now())
    page_actions = change_form_actions(change_page(admin_client, article))
    expect(
        page_actions.get("unpublish") == "Unpublish this article",
        "The change page's dropdown should offer 'unpublish' as 'Unpublish this article'; "
        f"it offers {page_actions or 'nothing'}. " + OLD_GET_ACTIONS,
    )
    listed = offered_actions(admin_client, Article)
    expect(
        "unpublish" not in listed,
        "The changelist offers 'unpublish': it belongs on the change page only, where the "
        "user sees the one article it takes offline.",
    )
    before = snapshot()
    post_action(admin_client, Article, "unpublish", [article.pk])
    expect_unchanged(before, "A changelist POST naming 'unpublish'")


@pytest.mark.task(2, points=3)
def test_unpublish_sends_the_article_back_to_draft_and_keeps_its_date(admin_client, make):
    first_out = timezone.now() - timedelta(days=9)
    article = make("Live", status=PUBLISHED, pub_date=first_out)
    other = make("Also live", status=PUBLISHED, pub_date=first_out)
    url = change_url(article, FILTERS)
    response = run_on_change_page(admin_client, article, "unpublish", query=FILTERS)
    expect_back_on_the_page(response, url, "unpublish")
    refreshed(article, other)
    expect(
        article.status == DRAFT and article.pub_date == first_out,
        f"After 'unpublish' the article is {article.status!r} with pub_date "
        f"{article.pub_date}: it should be a draft that keeps the date it first went out.",
    )
    expect(other.status == PUBLISHED, "Unpublishing one article unpublished another too.")
    expect_messages(follow(admin_client, response),
                    [("success", "1 article was unpublished.")], "unpublish", advice=PAGE_ONLY)


@pytest.mark.task(2, points=2)
def test_unpublishing_a_draft_changes_nothing_and_says_so(admin_client, make):
    article = make("Still a draft")
    response = run_on_change_page(admin_client, article, "unpublish")
    refreshed(article)
    expect(article.status == DRAFT and article.pub_date is None,
           "Unpublishing a draft changed it.")
    expect_messages(
        follow(admin_client, response),
        [("warning",
          "No articles were unpublished: none of the selected articles is published.")],
        "unpublish", advice=PAGE_ONLY,
    )


# Task 3: Duplicate as a draft


@pytest.fixture
def tagged(make):
    article = make("The long read", status=PUBLISHED, pub_date=timezone.now(),
                   body="Once upon a time.\nThe end.")
    article.tags.set([Tag.objects.create(name="culture"), Tag.objects.create(name="history")])
    Tag.objects.create(name="sport")
    # Another article in the table, which duplicating this one must leave alone.
    make("A bystander", body="Not this one.")
    return article


def duplicate(client, article, query=""):
    before = set(Article.objects.values_list("pk", flat=True))
    response = run_on_change_page(client, article, "duplicate_as_draft", query=query)
    copies = Article.objects.exclude(pk__in=before)
    expect(
        copies.count() == 1,
        f"'duplicate_as_draft' should add exactly one article; {copies.count()} were added.",
    )
    return response, copies.get()


@pytest.mark.task(3, points=2)
def test_duplicate_is_offered_on_the_change_page_only(admin_client, make):
    article = make("Original")
    page_actions = change_form_actions(change_page(admin_client, article))
    expect(
        page_actions.get("duplicate_as_draft") == "Duplicate as draft",
        "The change page's dropdown should offer 'duplicate_as_draft' as 'Duplicate as "
        f"draft'; it offers {page_actions or 'nothing'}. " + OLD_GET_ACTIONS,
    )
    expect("duplicate_as_draft" not in offered_actions(admin_client, Article),
           "The changelist offers 'duplicate_as_draft': it belongs on the change page only.")


@pytest.mark.task(3, points=4)
def test_duplicate_makes_a_draft_copy_with_the_tags_and_leaves_the_original_alone(
    admin_client, tagged
):
    before = (tagged.title, tagged.status, tagged.pub_date, set(tagged.tags.all()))
    _, copy = duplicate(admin_client, tagged)
    found = {
        "title": copy.title, "body": copy.body, "author": copy.author_id,
        "status": copy.status, "pub_date": copy.pub_date,
    }
    wanted = {
        "title": "The long read (copy)", "body": tagged.body, "author": tagged.author_id,
        "status": DRAFT, "pub_date": None,
    }
    wrong = [f"  {k}: {found[k]!r}, expected {wanted[k]!r}" for k in wanted
             if found[k] != wanted[k]]
    expect(not wrong, "The copy differs from the contract:\n" + "\n".join(wrong))
    tags = sorted(t.name for t in copy.tags.all())
    expect(
        tags == ["culture", "history"],
        f"The copy's tags are {tags}; expected the original's, ['culture', 'history']. "
        "Where does Django keep an article's tags, and what does saving a new article write "
        "there?",
    )
    refreshed(tagged)
    expect(
        (tagged.title, tagged.status, tagged.pub_date, set(tagged.tags.all())) == before,
        "Duplicating changed the original article: it must stay exactly as it was.",
    )


@pytest.mark.task(3, points=3)
def test_duplicate_answers_with_the_copy_s_change_page_and_keeps_the_list_s_filters(
    admin_client, tagged
):
    response, copy = duplicate(admin_client, tagged, query=FILTERS)
    wanted = change_url(copy, FILTERS)
    expect(
        response.status_code == 302 and response.url == wanted,
        f"'duplicate_as_draft' answered {response.status_code}"
        + (f", a redirect to {response.url}" if response.status_code == 302 else "")
        + f"; expected a redirect to the copy's change page, {wanted}: the user edits the "
        "copy next, and its Save leads back to the filtered list they came from, as after "
        "Django's own Save. Which URL name does the admin give a change page, and which "
        "ModelAdmin method gives the query string to keep?",
    )
    page = follow(admin_client, response)
    shown = messages_of(page)
    expect(
        [level for level, _ in shown] == ["success"],
        "The copy's page should show one SUCCESS message (your words) saying the copy was "
        f"made; it shows:\n{listing(shown)}",
    )


@pytest.mark.task(3, points=2)
def test_duplicate_records_the_copy_in_the_admin_history(admin_client, admin_user, tagged):
    _, copy = duplicate(admin_client, tagged)
    entries = LogEntry.objects.filter(object_id=str(copy.pk))
    found = [(e.action_flag, e.user_id) for e in entries]
    expect(
        found == [(ADDITION, admin_user.pk)],
        f"The copy's admin history holds {len(found)} entries "
        f"{[('addition' if f == ADDITION else f, u) for f, u in found]}; expected one "
        "addition by the user who ran the action, as Django writes one when an article is "
        "added with its Save button. Which ModelAdmin method writes it?",
    )


@pytest.mark.task(3, points=1)
def test_the_copy_of_a_long_title_still_fits_its_column(admin_client, make):
    longest = make("x" * 200)
    _, copy = duplicate(admin_client, longest)
    expect(
        len(copy.title) <= 200 and copy.title.endswith(" (copy)"),
        f"The copy of a 200-character title is titled {len(copy.title)} characters, "
        f"ending {copy.title[-10:]!r}; it must fit the column's 200 and end with ' (copy)'. "
        "SQLite stores a longer one; PostgreSQL refuses it and the user gets a 500.",
    )


@pytest.mark.task(3, points=2)
def test_a_duplicate_that_fails_halfway_leaves_no_copy(admin_client, tagged):
    table = Article.tags.through._meta.db_table
    refused = []

    def refuse_the_tags(execute, sql, params, many, context):
        if sql.startswith("INSERT") and f'"{table}"' in sql:
            refused.append(sql)
            raise IntegrityError("refused by the test: the tags' table is full")
        return execute(sql, params, many, context)

    article_count = Article.objects.count()
    _, url, fields = choose_action(admin_client, tagged, "duplicate_as_draft")
    admin_client.raise_request_exception = False
    with connection.execute_wrapper(refuse_the_tags), refusals_unlogged():
        response = press(admin_client, url, fields, "index", "0")
    added = Article.objects.count() - article_count
    expect(
        refused or added,
        f"'duplicate_as_draft' answered {response.status_code} and made no copy before any "
        "tag was written; test_duplicate_makes_a_draft_copy_with_the_tags_and_leaves_the_"
        "original_alone says what the copy needs.",
    )
    expect(
        refused,
        "The copy was made without writing any tag, so this test could not make that part "
        "fail; test_duplicate_makes_a_draft_copy_with_the_tags_and_leaves_the_original_alone "
        "says what the copy needs.",
    )
    expect(
        Article.objects.count() == article_count,
        "The database refused the copy's tags, and a copy without them stayed behind "
        f"(answer: {response.status_code}). The whole POST runs in one transaction, and a "
        "failed write dooms all of it; an atomic() block of your own whose error you catch "
        "undoes only what is inside it, and the rest is committed.",
    )


# Task 4: Only for those who may


def expect_offered(found, wanted, user, page, holds):
    """Fail unless the `page` offers `user` (who `holds` these permissions) exactly `wanted`,
    saying why each difference may come about."""
    __tracebackhide__ = True
    extra, missing = set(found) - set(wanted), set(wanted) - set(found)
    why = []
    if "delete_selected" in extra:
        why.append("delete_selected comes from the admin site, not from your actions list, "
                   "and the delete permission offers it: which method takes it away, for "
                   "whom?")
    if extra - {"delete_selected"} or missing:
        why.append(("For the others: w" if why else "W") + "here may each action be offered "
                   f"(its location), which permissions does it declare, and does the {user} "
                   "hold one of them?")
    if page == "change page" and wanted and not found:
        why.append(OLD_GET_ACTIONS)
    expect(
        not extra and not missing,
        f"The {page} offers the {user} ({holds}) {sorted(found) or 'nothing'}; expected "
        f"{sorted(wanted) or 'nothing'}. " + " ".join(why),
    )


@pytest.mark.task(4, points=3)
def test_each_user_is_offered_on_the_change_page_what_they_may_run(
    admin_client, editor, writer, reader, make
):
    article = make("Anyone's")
    for client, user, wanted in [
        (admin_client, "superuser", ALL_ON_THE_PAGE),
        (editor, "editor", ALL_ON_THE_PAGE),
        (writer, "writer", {"publish", "unpublish"}),
        (reader, "reader", set()),
    ]:
        found = change_form_actions(change_page(client, article))
        expect_offered(found, wanted, user, "change page", HOLDS[user])


@pytest.mark.task(4, points=3)
def test_bulk_delete_stays_with_superusers_and_no_deprecated_override_is_called(
    admin_client, editor, writer, reader, make
):
    article = make("Keep me")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for client, user, wanted in [
            (admin_client, "superuser", {"delete_selected", "publish"}),
            (editor, "editor", {"publish"}),
            (writer, "writer", {"publish"}),
            (reader, "reader", set()),
        ]:
            expect_offered(offered_actions(client, Article), wanted, user, "changelist",
                           HOLDS[user])
            change_page(client, article)
    deprecated = [str(w.message) for w in caught
                  if issubclass(w.category, RemovedInDjango2028Warning)]
    expect(not deprecated,
           f"Loading the pages warned: {deprecated[0] if deprecated else ''}\n{OLD_GET_ACTIONS}")
    post_action(editor, Article, "delete_selected", [article.pk], post="yes")
    expect(Article.objects.filter(pk=article.pk).exists(),
           "The editor's forged POST of delete_selected deleted the article.")


@pytest.mark.task(4, points=2)
def test_a_reader_s_forged_posts_change_nothing_where_a_writer_s_publish(reader, writer, make):
    draft = make("Draft")
    live = make("Live", status=PUBLISHED, pub_date=timezone.now())
    before = snapshot()
    for article, action in [(draft, "publish"), (live, "unpublish"),
                            (draft, "duplicate_as_draft")]:
        post_change_form_action(reader, article, action)
        expect_unchanged(before, f"A reader's forged POST of '{action}' on the change page")
    # The same POST, built by hand, from a user who may change articles.
    post_change_form_action(writer, draft, "publish")
    refreshed(draft)
    expect(
        draft.status == PUBLISHED,
        "A writer's POST of 'publish' on the change page (what its Run button sends) did not "
        "publish the article.",
    )


@pytest.mark.task(4, points=2)
def test_a_writer_may_publish_but_not_duplicate(writer, make):
    article = make("Writer's piece")
    before = snapshot()
    post_change_form_action(writer, article, "duplicate_as_draft")
    expect_unchanged(before, "A writer's forged POST of 'duplicate_as_draft'")
    run_on_change_page(writer, article, "publish")
    refreshed(article)
    expect(article.status == PUBLISHED, "The writer, who may change articles, could not "
           "publish one from its page.")


@pytest.mark.task(4, points=2)
def test_a_post_naming_other_articles_is_refused_and_changes_nothing(admin_client, make):
    article, other = make("This one"), make("Another")
    change_page(admin_client, article)  # the superuser is offered the actions here
    before = snapshot()
    for selected in ([other.pk], [article.pk, other.pk]):
        response = post_change_form_action(admin_client, article, "publish", selected=selected)
        expect(
            response.status_code == 400,
            f"A change-page POST of 'publish' whose _selected_action is {selected} (the page "
            f"is article {article.pk}'s) answered {response.status_code}; Django refuses it "
            "with 400 Bad Request when the page offers actions.",
        )
        expect_unchanged(before, f"A POST with _selected_action {selected}")
