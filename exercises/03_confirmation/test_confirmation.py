"""Graded tests for exercise 03: they delete through the admin as a logged-in user does.

The first POST comes from the changelist's action form; the second is the confirmation page's
own form, read from the page and submitted as a browser would. Run them with:

    pytest exercises/03_confirmation
"""

import pytest
from django.apps import apps
from django.contrib.admin.models import DELETION, LogEntry
from django.test import Client

from workbook.testing import (
    changelist_url,
    expect,
    expect_action_offered,
    expect_message,
    form_with_button,
    login_staff,
    messages_of,
    offered_actions,
    parse_page,
    post_action,
    submit_form,
)

Article = apps.get_model("confirmation", "Article")
Comment = apps.get_model("confirmation", "Comment")
FeaturedSlot = apps.get_model("confirmation", "FeaturedSlot")

ACTION = "delete_with_confirmation"
TEMPLATE = "admin/confirmation/article/delete_with_confirmation.html"

pytestmark = pytest.mark.django_db


def make_articles(author, count, title="Article", comments=0, **fields):
    articles = Article.objects.bulk_create(
        Article(title=f"{title} {i}", author=author, **fields) for i in range(1, count + 1)
    )
    Comment.objects.bulk_create(
        Comment(article=article, name="Reader", body="Nice.")
        for article in articles
        for _ in range(comments)
    )
    return articles


def ask(client, articles, **options):
    """The first POST: choose the action on the changelist and press Run."""
    return post_action(client, Article, ACTION, [a.pk for a in articles], follow=False, **options)


def confirmation_page(client, articles, **options):
    """The confirmation page for `articles`, after checking it is one."""
    __tracebackhide__ = True
    response = ask(client, articles, **options)
    expect(
        response.status_code == 200,
        f"Running '{ACTION}' answered {response.status_code}"
        + (f" (a redirect to {response.url})" if response.status_code == 302 else "")
        + ", not 200 with a confirmation page. Without 'apply' in request.POST, the action "
        f"returns TemplateResponse(request, {TEMPLATE!r}, context).",
    )
    return response


def expect_a_confirm_form(response):
    __tracebackhide__ = True
    expect(
        form_with_button(response, "apply") is not None,
        "The confirmation page has no form with a submit button named 'apply'. In your "
        "template: <form method=\"post\"> ... <input type=\"submit\" name=\"apply\" ...>.",
    )


def remaining(articles):
    return Article.objects.filter(pk__in=[a.pk for a in articles]).count()


# Task 1: Ask before deleting


@pytest.mark.task(1, points=1)
def test_delete_with_confirmation_is_offered_in_the_dropdown(admin_client):
    expect_action_offered(admin_client, Article, ACTION, "Delete with custom confirmation")


@pytest.mark.task(1, points=2)
def test_the_first_post_shows_an_admin_page_and_deletes_nothing(admin_client, admin_user):
    expect_action_offered(admin_client, Article, ACTION)
    articles = make_articles(admin_user, 2, comments=1)

    response = confirmation_page(admin_client, articles)

    templates = [t.name for t in response.templates]
    expect(
        TEMPLATE in templates and "admin/base_site.html" in templates,
        f"The confirmation page was rendered from {templates[:3]}; it should be {TEMPLATE}, "
        'which {% extends "admin/base_site.html" %} so it looks like the rest of the admin.',
    )
    expect(remaining(articles) == 2, "The first POST deleted articles: it must only ask.")
    expect(Comment.objects.count() == 2, "The first POST deleted comments: it must only ask.")
    page = response.content.decode()
    expect(
        "Delete these articles?" in page or response.context.get("title"),
        "Give the page a title (the 'title' context variable, which base_site.html shows).",
    )
    expect(
        changelist_url(Article) in parse_page(response).links,
        "The page needs breadcrumbs (or any link) back to the Article changelist.",
    )


@pytest.mark.task(1, points=2)
def test_the_page_lists_each_selected_article_and_its_comment_count(admin_client, admin_user):
    expect_action_offered(admin_client, Article, ACTION)
    (quiet,) = make_articles(admin_user, 1, title="Quiet")
    (busy,) = make_articles(admin_user, 1, title="Busy", comments=3)
    (other,) = make_articles(admin_user, 1, title="Unselected")

    page = confirmation_page(admin_client, [quiet, busy]).content.decode()

    for title in ("Quiet 1", "Busy 1"):
        expect(title in page, f"The confirmation page does not name the selected {title!r}.")
    expect("Unselected 1" not in page, "The page names an article that was not selected.")
    expect(
        "3 comments" in page and "0 comments" in page,
        "The page should say how many comments go with each article ('3 comments', "
        "'0 comments'): annotate the queryset with Count('comments').",
    )


@pytest.mark.task(1, points=2)
def test_the_form_posts_the_selection_back_and_offers_a_way_out(admin_client, admin_user):
    expect_action_offered(admin_client, Article, ACTION)
    articles = make_articles(admin_user, 3)

    response = confirmation_page(admin_client, articles[:2], query="status__exact=draft")

    expect_a_confirm_form(response)
    fields = form_with_button(response, "apply")["fields"]
    names = [name for name, _ in fields]
    selected = sorted(value for name, value in fields if name == "_selected_action")
    expected = sorted(str(a.pk) for a in articles[:2])
    problems = [
        message
        for ok, message in [
            ("csrfmiddlewaretoken" in names, "the CSRF token ({% csrf_token %})"),
            (("action", ACTION) in fields, f"a hidden 'action' with the value {ACTION!r}"),
            (selected == expected, f"one hidden '_selected_action' per article: {expected}, "
                                   f"found {selected}"),
            ("select_across" in names, "a hidden 'select_across' carrying the user's choice"),
            ("index" in names, "a hidden 'index', the field that says which action bar ran"),
        ]
        if not ok
    ]
    expect(not problems, "The confirmation form lacks:\n  " + "\n  ".join(problems))
    back = changelist_url(Article, "status__exact=draft")
    expect(
        back in parse_page(response).links,
        f"Offer a way out: a cancel link back to the changelist as the user left it, {back} "
        "(request.get_full_path() is that URL).",
    )


@pytest.mark.task(1, points=1)
def test_a_get_request_never_deletes(admin_client, admin_user):
    expect_action_offered(admin_client, Article, ACTION)
    articles = make_articles(admin_user, 2)

    admin_client.get(
        changelist_url(Article),
        {"action": ACTION, "apply": "yes", "index": 0, "_selected_action": [a.pk for a in articles]},
    )

    expect(remaining(articles) == 2, "A GET request deleted articles. Only POSTs may change data.")


@pytest.mark.task(1, points=1)
def test_primary_keys_are_posted_without_thousand_separators(admin_client, admin_user, settings):
    expect_action_offered(admin_client, Article, ACTION)
    settings.USE_THOUSAND_SEPARATOR = True
    article = Article.objects.create(pk=1234, title="Big id", author=admin_user)

    response = confirmation_page(admin_client, [article])

    expect_a_confirm_form(response)
    values = [v for n, v in form_with_button(response, "apply")["fields"] if n == "_selected_action"]
    expect(
        values == ["1234"],
        f"With thousand separators on, the hidden inputs hold {values}; expected ['1234']. "
        "Numbers in templates are localised: write {{ pk|unlocalize }} (from {% load l10n %}).",
    )


# Task 2: Delete for real, once confirmed


@pytest.mark.task(2, points=3)
def test_confirming_deletes_the_articles_and_their_comments(admin_client, admin_user):
    expect_action_offered(admin_client, Article, ACTION)
    articles = make_articles(admin_user, 3, comments=2)
    page = confirmation_page(admin_client, articles[:2])
    expect_a_confirm_form(page)

    response = submit_form(admin_client, page, "apply")

    expect(
        remaining(articles[:2]) == 0,
        "Pressing 'apply' on the confirmation page did not delete the 2 articles. With "
        "'apply' in request.POST, delete the queryset (self.delete_queryset).",
    )
    expect(remaining(articles[2:]) == 1, "An article that was not selected was deleted.")
    expect(Comment.objects.count() == 2, "The deleted articles' comments should go too.")
    expect(
        response.redirect_chain and response.redirect_chain[-1][0] == changelist_url(Article),
        "After deleting, the user should land on the changelist: return None from the action.",
    )
    expect_message(response, "success", "Deleted 2 articles.", ACTION)


@pytest.mark.task(2, points=1)
def test_deleting_one_article_says_so_in_the_singular(admin_client, admin_user):
    expect_action_offered(admin_client, Article, ACTION)
    articles = make_articles(admin_user, 1)
    page = confirmation_page(admin_client, articles)
    expect_a_confirm_form(page)

    response = submit_form(admin_client, page, "apply")

    expect_message(response, "success", "Deleted 1 article.", ACTION)


@pytest.mark.task(2, points=2)
def test_each_deletion_is_recorded_in_the_admin_history(admin_client, admin_user):
    expect_action_offered(admin_client, Article, ACTION)
    articles = make_articles(admin_user, 2, title="Logged")
    page = confirmation_page(admin_client, articles)
    expect_a_confirm_form(page)

    submit_form(admin_client, page, "apply")

    entries = LogEntry.objects.filter(action_flag=DELETION, user=admin_user)
    logged = sorted((e.object_id, e.object_repr) for e in entries)
    expected = sorted((str(a.pk), a.title) for a in articles)
    expect(
        logged == expected,
        f"The admin history holds the deletions {logged}; expected {expected}. Call "
        "self.log_deletions(request, queryset) before deleting, as delete_selected does.",
    )


@pytest.mark.task(2, points=1)
def test_confirming_works_when_the_bottom_action_bar_was_used(admin_client, admin_user):
    expect_action_offered(admin_client, Article, ACTION)
    articles = make_articles(admin_user, 2)
    # The bottom bar was used: the form sends both bars' "action" fields, and index=1.
    page = admin_client.post(
        changelist_url(Article),
        {"action": ["", ACTION], "index": 1, "select_across": "0",
         "_selected_action": [a.pk for a in articles]},
    )
    expect_a_confirm_form(page)

    response = submit_form(admin_client, page, "apply")

    expect(
        remaining(articles) == 0,
        "Started from the bottom action bar (two 'action' fields, index=1), confirming "
        f"deleted nothing; the page showed {messages_of(response)}. The confirmation form "
        f"should hold one hidden 'action' field with the value {ACTION!r}.",
    )


@pytest.mark.task(2, points=1)
def test_articles_deleted_meanwhile_are_not_counted(admin_client, admin_user):
    expect_action_offered(admin_client, Article, ACTION)
    articles = make_articles(admin_user, 3)
    page = confirmation_page(admin_client, articles)
    expect_a_confirm_form(page)
    articles[0].delete()  # someone else was quicker

    response = submit_form(admin_client, page, "apply")

    expect(remaining(articles) == 0, "The two remaining articles should be deleted.")
    expect_message(response, "success", "Deleted 2 articles.", ACTION)


@pytest.mark.task(2, points=1)
def test_the_whole_flow_passes_django_csrf_checks(admin_user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    expect_action_offered(client, Article, ACTION)
    articles = make_articles(admin_user, 2)
    changelist = client.get(changelist_url(Article))
    token = dict(parse_page(changelist).forms[-1]["fields"])["csrfmiddlewaretoken"]
    page = confirmation_page(client, articles, csrfmiddlewaretoken=token)
    expect_a_confirm_form(page)

    response = submit_form(client, page, "apply")

    expect(
        response.status_code == 200 and remaining(articles) == 0,
        f"With CSRF checks on, confirming answered {response.status_code} and "
        f"{remaining(articles)} articles remain. Put {{% csrf_token %}} inside the form.",
    )


@pytest.mark.task(2, points=2)
def test_a_user_without_delete_permission_is_neither_offered_it_nor_obeyed(
    admin_client, client, django_user_model, admin_user
):
    expect_action_offered(admin_client, Article, ACTION)
    articles = make_articles(admin_user, 2)
    login_staff(
        client, django_user_model, "confirmation.view_article", "confirmation.change_article"
    )

    offered = offered_actions(client, Article)
    forged = post_action(client, Article, ACTION, [a.pk for a in articles], apply="yes")

    expect(
        ACTION not in offered,
        f"A staff user without the delete permission is offered '{ACTION}'. Restrict it "
        "with @admin.action(permissions=['delete']), not with a check inside the action.",
    )
    # Whatever Django answers (with no action left to offer, it just shows the list again),
    # nothing may be deleted.
    expect(
        remaining(articles) == 2,
        f"A forged POST by a user without the delete permission deleted articles "
        f"(it answered {forged.status_code}).",
    )


# Task 3: Refuse what must not be deleted


@pytest.mark.task(3, points=3)
def test_a_protected_article_stops_the_whole_deletion(admin_client, admin_user):
    expect_action_offered(admin_client, Article, ACTION)
    free, featured = make_articles(admin_user, 2, comments=1)
    FeaturedSlot.objects.create(name="Home page hero", article=featured)
    page = confirmation_page(admin_client, [free, featured])
    expect_a_confirm_form(page)

    response = submit_form(admin_client, page, "apply")

    expect(
        remaining([free, featured]) == 2 and Comment.objects.count() == 2,
        "One selected article fills a featured slot (on_delete=PROTECT), yet articles or "
        "comments were deleted. Delete inside transaction.atomic(), so that the "
        "ProtectedError undoes everything.",
    )
    expect(
        not LogEntry.objects.filter(action_flag=DELETION).exists(),
        "Nothing was deleted, yet the history records deletions: log inside the same "
        "transaction as the delete.",
    )
    errors = [text for level, text in messages_of(response) if level == "error"]
    expect(
        any("Home page hero" in text for text in errors),
        f"The user should see an ERROR naming what protects the article ('Home page hero'); "
        f"the page shows {messages_of(response)}. Catch ProtectedError: its "
        "protected_objects are the featured slots.",
    )


# Task 4: Select all 1,500


@pytest.mark.task(4, points=3)
def test_select_all_1500_articles_on_a_filtered_changelist(admin_client, admin_user):
    expect_action_offered(admin_client, Article, ACTION)
    drafts = make_articles(admin_user, 1500, comments=0)
    published = make_articles(admin_user, 5, title="Keep", status="published")
    first_page = [a.pk for a in drafts[-100:]]  # the ticked boxes of the first page

    page = confirmation_page(
        admin_client, [], _selected_action=first_page, select_across=True,
        query="status__exact=draft",
    )
    expect_a_confirm_form(page)
    fields = form_with_button(page, "apply")["fields"]
    expect(
        len(fields) < 1000,
        f"The confirmation form for 1,500 articles has {len(fields)} fields; Django refuses "
        "a POST of more than DATA_UPLOAD_MAX_NUMBER_FIELDS (1,000) with a 400. With "
        "select_across, the filters in the URL pick the rows: send only the ticked boxes.",
    )
    response = submit_form(admin_client, page, "apply")

    expect(
        remaining(drafts) == 0,
        f"After 'select all 1,500' and confirming, {remaining(drafts)} drafts remain "
        f"(the response was {response.status_code}). Keep select_across=1 in the form, and "
        "let the form post to the changelist URL with its filters.",
    )
    expect(remaining(published) == 5, "Articles outside the filter were deleted.")
    expect_message(response, "success", "Deleted 1500 articles.", ACTION)
