"""Graded tests for exercise 03: they delete through the admin as a logged-in user does.

The first POST comes from the changelist's action form; the second is the confirmation page's
own form, read from the page and submitted as a browser would. Run them with:

    pytest exercises/03_confirmation
"""

import re

import pytest
from django.apps import apps
from django.contrib.admin.models import DELETION, LogEntry
from django.core import signing
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from workbook.testing import (
    changelist_url,
    expect,
    expect_action_offered,
    expect_message,
    expect_well_formed,
    form_url,
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
Translation = apps.get_model("confirmation", "Translation")

ACTION = "delete_with_confirmation"
TEMPLATE = "admin/confirmation/article/delete_with_confirmation.html"
# The messages of the lesson's contract.
GONE = "Nothing was deleted: none of the selected articles exists any more."
CHANGED = (
    "Nothing was deleted: the selection no longer matches the page you confirmed. "
    "Check the articles below and confirm again."
)
# What the changelist's own form posts; anything else on the confirmation form is the
# learner's own, such as the digest of the listed rows.
DRAFTS = "status__exact=draft"
CHANGELIST_FIELDS = {"csrfmiddlewaretoken", "action", "select_across", "index", "_selected_action"}

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


def page_text(response):
    """The page's text as a reader sees it: tags removed, whitespace collapsed."""
    return " ".join(re.sub(r"<[^>]+>", " ", response.content.decode()).split())


def expect_admin_frame(response, title):
    """The title and the breadcrumbs every admin page has, and a second way back."""
    __tracebackhide__ = True
    expect(
        response.context.get("title") == title,
        f"The page's title is {response.context.get('title')!r}; the lesson's contract "
        f"says {title!r} (the 'title' context variable, which base_site.html shows).",
    )
    match = re.search(r'<body[^>]*class="([^"]*)"', response.content.decode())
    expect(
        match and {"delete-confirmation", "app-confirmation", "model-article"}
        <= set(match[1].split()),
        "The page's <body> lacks the classes Django's delete pages carry (block bodyclass: "
        "delete-confirmation, app-confirmation, model-article); the admin's CSS styles the "
        "page with them.",
    )
    crumbs = re.search(r'<[a-z]+ class="breadcrumbs">(.*?)</(ol|div)>', response.content.decode(),
                       re.S)
    links = re.findall(r'href="([^"]+)"', crumbs[1]) if crumbs else []
    back = response.wsgi_request.get_full_path()
    expected = [reverse("admin:index"), reverse("admin:app_list", args=["confirmation"]), back]
    text = re.sub(r"<[^>]+>|\s+", " ", crumbs[1]) if crumbs else ""
    missing = [
        what for what, ok in (
            (f"the links {expected}", links == expected),
            ("the model's name, 'Articles'", "Articles" in text),
            (f"the page's title, {title!r}, as the last crumb", title in text),
        ) if not ok
    ]
    expect(
        crumbs and not missing,
        "The breadcrumbs should read Home › 03 · Confirmation › Articles › the page's title. "
        + (f"They lack {'; '.join(missing)}. Found the links {links} and the text "
           f"{' '.join(text.split())!r}." if crumbs else "The page has no element with class "
           "breadcrumbs.")
        + " Django's admin/delete_selected_confirmation.html has the block breadcrumbs to "
        "adapt.",
    )
    # The sidebar links the changelist too, but without the user's filters.
    expect(
        parse_page(response).links.count(back) >= 2,
        f"Besides the breadcrumbs, the page needs its own way out: a link to {back} beside "
        "the buttons ('No, take me back').",
    )


def remaining(articles):
    return Article.objects.filter(pk__in=[a.pk for a in articles]).count()


def confirm(client, page):
    """Press "Yes" on a confirmation page, after checking it has a form to press."""
    __tracebackhide__ = True
    expect_a_confirm_form(page)
    return submit_form(client, page, "apply")


def successes(response):
    return [text for level, text in messages_of(response) if level == "success"]


def page_messages(response):
    """The messages the page shows, or [] for an answer without an admin page: for a failure
    message, which must not fail on its own (messages_of does, to say what the answer was)."""
    context = getattr(response, "context", None)
    return messages_of(response) if context is not None and "messages" in context else []


def shown(response):
    """What the page the user landed on said, for a failure message."""
    found = page_messages(response)
    return f"the page showed {found}" if found else "the page showed no message"


# What Django answers, instead of running the action, to a POST it cannot hand to one.
DJANGO_REFUSALS = (
    "No action selected.",
    "Items must be selected in order to perform actions on them. No items have been changed.",
)


def refused_by_django(response):
    """Why Django ran no action for this POST, or "": what to blame before the action."""
    refusal = next((text for _, text in page_messages(response) if text in DJANGO_REFUSALS),
                   None)
    return (f"Django never ran your action: it answered {refusal!r}. The confirmation form "
            "must post what the changelist's own form posts (task 1).") if refusal else ""


def deletes_nothing(response, lead="So the confirming POST reaches your action, which deletes "
                                   "nothing"):
    """Why a confirming POST deleted nothing, for a test that has checked that what it tests
    (the action bar, the CSRF token, "select all", ...) is not the cause."""
    refusal = refused_by_django(response)
    if refusal:
        return refusal
    if ("warning", CHANGED) in page_messages(response):
        # The selection did not change here: the digests the page and the POST compute differ.
        return (
            "Your action answered that the selection changed, yet nobody changed it: the "
            "digest the page carries and the one the confirming POST computes differ for the "
            "same rows. Compute both from the same thing, the same way (task 5)."
        )
    return (
        f"{lead}. test_confirming_deletes_the_articles_and_their_comments (task 2) checks "
        "that on its own: make it pass first."
    )


def expect_nothing_deleted(articles, response, what):
    __tracebackhide__ = True
    expect(
        remaining(articles) == len(articles),
        f"{what}, yet pressing 'apply' deleted {len(articles) - remaining(articles)} of "
        f"{len(articles)} articles. Delete only when the rows selected now are exactly the rows "
        "the page listed: the page carries a signed digest of them, the confirming POST "
        "recomputes it from its queryset, and a mismatch deletes nothing.",
    )
    expect(
        not successes(response),
        f"{what}; nothing should be deleted, yet the user was told {successes(response)}.",
    )


# Task 1: Ask before deleting


@pytest.mark.task(1, points=1)
def test_delete_with_confirmation_is_offered_in_the_dropdown(admin_client):
    expect_action_offered(admin_client, Article, ACTION, "Delete with custom confirmation")


@pytest.mark.task(1, points=2)
def test_the_first_post_shows_an_admin_page_and_deletes_nothing(admin_client, admin_user):
    expect_action_offered(admin_client, Article, ACTION)
    articles = make_articles(admin_user, 2, comments=1)

    # Filtered, as users often are: the way back keeps the filter.
    response = confirmation_page(admin_client, articles, query=DRAFTS)

    templates = [t.name for t in response.templates]
    expect(
        TEMPLATE in templates and "admin/base_site.html" in templates,
        f"The confirmation page was rendered from {templates[:3]}; it should be {TEMPLATE}, "
        'which {% extends "admin/base_site.html" %} so it looks like the rest of the admin.',
    )
    expect(remaining(articles) == 2, "The first POST deleted articles: it must only ask.")
    expect(Comment.objects.count() == 2, "The first POST deleted comments: it must only ask.")
    expect(
        not messages_of(response),
        f"The first POST should only show the page, without any message; it shows "
        f"{messages_of(response)}. Tell the first POST (no 'apply') from the confirming one.",
    )
    expect_admin_frame(response, "Delete these articles?")
    expect_well_formed(response, "the confirmation page")


@pytest.mark.task(1, points=2)
def test_the_page_lists_each_selected_article_and_its_comment_count(admin_client, admin_user):
    expect_action_offered(admin_client, Article, ACTION)
    (quiet,) = make_articles(admin_user, 1, title="Quiet")
    (busy,) = make_articles(admin_user, 1, title="Busy", comments=3)
    (single,) = make_articles(admin_user, 1, title="Single", comments=1)
    (other,) = make_articles(admin_user, 1, title="Unselected")

    page = page_text(confirmation_page(admin_client, [quiet, busy, single]))

    for title in ("Quiet 1", "Busy 1", "Single 1"):
        expect(title in page, f"The confirmation page does not name the selected {title!r}.")
    expect("Unselected 1" not in page, "The page names an article that was not selected.")
    expect(
        "3 comments" in page and "0 comments" in page
        and "1 comment" in page and "1 comments" not in page,
        "The page should say how many comments go with each article ('3 comments', "
        "'1 comment', '0 comments'): annotate the queryset with Count('comments'), and let "
        "{% blocktranslate count %} choose the singular.",
    )
    expect(
        "3 articles and 4 comments will be deleted:" in page,
        "Above the list, the page should sum it up: '3 articles and 4 comments will be "
        "deleted:' (the lesson's contract).",
    )


@pytest.mark.task(1, points=1)
def test_the_summary_of_one_article_is_in_the_singular(admin_client, admin_user):
    expect_action_offered(admin_client, Article, ACTION)
    articles = make_articles(admin_user, 1, comments=1)

    page = page_text(confirmation_page(admin_client, articles))

    expect(
        "1 article and 1 comment will be deleted:" in page,
        "For one article with one comment the page should read '1 article and 1 comment will "
        "be deleted:'. Build each count with {% blocktranslate count counter=... %} and its "
        "{% plural %}.",
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


@pytest.mark.task(1, points=2)
def test_the_page_runs_as_many_queries_for_60_articles_as_for_3(admin_client, admin_user):
    expect_action_offered(admin_client, Article, ACTION)
    few = make_articles(admin_user, 3, title="Few", comments=1)
    many = make_articles(admin_user, 60, title="Many", comments=2)

    counts = []
    for articles in (few, many):
        with CaptureQueriesContext(connection) as queries:
            confirmation_page(admin_client, articles)
        counts.append(len(queries))

    expect(
        counts[0] == counts[1],
        f"The confirmation page ran {counts[0]} SQL queries for 3 articles and {counts[1]} for "
        "60: something runs a query per article. Count the comments in the query that lists "
        "the articles (annotate with Count('comments')), and look up whatever else the page "
        "shows for the whole selection at once, never article by article.",
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
        "Pressing 'apply' on the confirmation page deleted "
        + ("none" if remaining(articles[:2]) == 2 else "only one")
        + f" of the 2 articles; {shown(response)}. " + (
            refused_by_django(response) or "With 'apply' in request.POST, delete the queryset "
            "(self.delete_queryset)."),
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

    response = submit_form(admin_client, page, "apply")

    entries = LogEntry.objects.filter(action_flag=DELETION, user=admin_user)
    logged = sorted((e.object_id, e.object_repr) for e in entries)
    expected = sorted((str(a.pk), a.title) for a in articles)
    expect(
        logged == expected,
        f"The admin history holds the deletions {logged}; expected {expected}. " + (
            refused_by_django(response) or "Call self.log_deletions(request, queryset) before "
            "deleting, as delete_selected does."),
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

    if remaining(articles) == 0:
        return
    fields = form_with_button(page, "apply")["fields"]
    posted = [value for name, value in fields if name == "action"]
    index = dict(fields).get("index", "0")
    what = (
        "Started from the bottom action bar (two 'action' fields, index=1), confirming "
        f"deleted {'nothing' if remaining(articles) == 2 else 'only one of the 2 articles'}; "
        f"{shown(response)}. "
    )
    expect(
        action_django_runs(fields) == ACTION,
        what + f"Your confirmation form posts action={posted} and index={index!r}, from which "
        f"Django runs {action_django_runs(fields)!r}. It should hold one hidden 'action' field "
        f"with the value {ACTION!r}.",
    )
    expect(
        False,
        what + f"The form is not the cause: it posts action={posted} and index={index!r}, and "
        f"Django runs {ACTION!r} from them. " + deletes_nothing(response),
    )


def action_django_runs(fields):
    """The action Django's response_action picks from a form's fields: the `index`-th
    'action' value, or the last one when there is none at that index."""
    actions = [value for name, value in fields if name == "action"]
    try:
        index = int(dict(fields).get("index", "0"))
    except ValueError:
        index = 0
    if not actions:
        return None
    return actions[index] if 0 <= index < len(actions) else actions[-1]


@pytest.mark.task(2, points=1)
@pytest.mark.parametrize("count", [1, 3], ids=["one article", "three articles"])
def test_articles_deleted_meanwhile_are_not_reported_as_deleted(admin_client, admin_user, count):
    expect_action_offered(admin_client, Article, ACTION)
    articles = make_articles(admin_user, count)
    page = confirmation_page(admin_client, articles)
    Article.objects.filter(pk__in=[a.pk for a in articles]).delete()  # someone else was quicker

    response = confirm(admin_client, page)

    expect(
        not successes(response),
        f"All {count} selected articles were deleted by someone else before 'apply'; the user "
        f"deleted nothing, yet was told {successes(response)}. Count the rows before you delete.",
    )
    expect_message(response, "warning", GONE, ACTION)
    expect(
        messages_of(response) == [("warning", GONE)],
        f"The user should see the one WARNING and nothing else; the page shows "
        f"{messages_of(response)}. When nothing is left, stop there and return None.",
    )


@pytest.mark.task(2, points=1)
def test_a_first_post_whose_articles_are_gone_asks_nothing(admin_client, admin_user):
    expect_action_offered(admin_client, Article, ACTION)
    articles = make_articles(admin_user, 2)
    Article.objects.all().delete()  # deleted in another tab before "Run" was pressed

    response = post_action(admin_client, Article, ACTION, [a.pk for a in articles])

    expect(
        form_with_button(response, "apply") is None
        and response.redirect_chain[-1:] == [(changelist_url(Article), 302)],
        "The selected articles no longer exist, yet the action answered with a confirmation "
        "page. With nothing to list, add the WARNING and return None.",
    )
    expect(
        messages_of(response) == [("warning", GONE)],
        f"The user should see the WARNING {GONE!r} and nothing else; the page shows "
        f"{messages_of(response)}.",
    )


@pytest.mark.task(2, points=1)
def test_confirming_deletes_in_batches_not_row_by_row(admin_client, admin_user):
    expect_action_offered(admin_client, Article, ACTION)
    articles = make_articles(admin_user, 200, comments=1)
    page = confirmation_page(admin_client, articles)
    expect_a_confirm_form(page)

    with CaptureQueriesContext(connection) as queries:
        response = confirm(admin_client, page)

    expect(
        remaining(articles) < 200,
        f"Confirming the deletion of 200 articles deleted none of them ({len(queries)} SQL "
        f"queries ran; {shown(response)}). " + deletes_nothing(response),
    )
    expect(
        remaining(articles) == 0 and len(queries) < 100,
        f"Confirming the deletion of 200 articles ran {len(queries)} SQL queries and left "
        f"{remaining(articles)}. Deleting article by article costs several queries per row: "
        "delete the whole queryset at once with self.delete_queryset(request, queryset), after "
        "self.log_deletions(request, queryset).",
    )


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

    if response.status_code == 200 and remaining(articles) == 0:
        return
    names = [name for name, _ in form_with_button(page, "apply")["fields"]]
    what = (
        f"With CSRF checks on, confirming answered {response.status_code} and deleted "
        + ("nothing" if remaining(articles) == 2 else "only one of the 2 articles")
    )
    expect(
        response.status_code != 403,
        what + ": Django's CSRF check refused the POST. "
        + ("Put {% csrf_token %} inside the form." if "csrfmiddlewaretoken" not in names else
           "The form posts a csrfmiddlewaretoken, yet it was refused: render it with "
           "{% csrf_token %}, inside the form, not copied from elsewhere."),
    )
    expect(
        remaining(articles) < 2,
        what + f"; {shown(response)}. The CSRF check is not the cause: it let the POST "
        "through (Django answers 403 when it refuses one). " + deletes_nothing(response),
    )
    expect(False, what + f"; {shown(response)}.")


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


def expect_cannot_delete_page(response, lines, sentence):
    """The first page says what blocks the deletion, offers no "Yes", and a way back."""
    __tracebackhide__ = True
    text = page_text(response)
    missing = [line for line in lines if line not in text]
    expect(
        not missing,
        f"Selected articles cannot be deleted, yet the first page (titled "
        f"{response.context.get('title')!r}"
        + (", with a Yes button" if 'name="apply"' in response.content.decode() else "")
        + f") lacks {missing}"
        + (": it lists no blocking row at all" if len(missing) == len(lines) else "")
        + ". Before asking, look up the rows whose PROTECT or RESTRICT foreign key points at a selected "
        "article, and list each as the lesson's contract says: '<Verbose name> “<row>” refers "
        "to “<article>”'.",
    )
    expect(
        sentence in text,
        f"Above that list the page should say {sentence!r} (the lesson's contract: "
        "{% blocktranslate count %} over the number of rows in the way).",
    )
    expect(
        form_with_button(response, "apply") is None,
        "The page says nothing can be deleted, but still offers a button named 'apply'. "
        "Leave the form out of that page.",
    )
    expect_admin_frame(response, "Cannot delete these articles")
    expect_well_formed(response, "the page that refuses")


@pytest.mark.task(3, points=2)
def test_the_first_page_says_what_protects_an_article(admin_client, admin_user):
    expect_action_offered(admin_client, Article, ACTION)
    free, featured = make_articles(admin_user, 2, comments=1)
    FeaturedSlot.objects.create(name="Home page hero", article=featured)

    response = confirmation_page(admin_client, [free, featured], query=DRAFTS)

    expect_cannot_delete_page(
        response, [f"Featured slot “Home page hero” refers to “{featured.title}”"],
        "Nothing can be deleted while this row refers to a selected article. Remove it first:",
    )
    expect(remaining([free, featured]) == 2, "The first POST deleted articles: it must only ask.")


@pytest.mark.task(3, points=1)
def test_the_first_page_says_what_restricts_an_article(admin_client, admin_user):
    expect_action_offered(admin_client, Article, ACTION)
    translated, free, featured = make_articles(admin_user, 3)
    translation = Translation.objects.create(article=translated, language="fr",
                                             translator=admin_user)
    FeaturedSlot.objects.create(name="Sidebar pick", article=featured)

    response = confirmation_page(admin_client, [translated, free, featured], query=DRAFTS)

    expect_cannot_delete_page(
        response,
        [f"Translation “{translation}” refers to “{translated.title}”",
         f"Featured slot “Sidebar pick” refers to “{featured.title}”"],
        "Nothing can be deleted while these 2 rows refer to selected articles. Remove them "
        "first:",
    )


@pytest.mark.task(3, points=1)
def test_the_refusing_page_runs_as_many_queries_for_30_articles_as_for_2(admin_client,
                                                                         admin_user):
    expect_action_offered(admin_client, Article, ACTION)
    counts = []
    for size in (2, 30):
        articles = make_articles(admin_user, size, title=f"Blocked{size}", comments=1)
        for article in articles:
            FeaturedSlot.objects.create(name=f"Slot {article.pk}", article=article)
            Translation.objects.create(article=article, language="it", translator=admin_user)
        with CaptureQueriesContext(connection) as queries:
            confirmation_page(admin_client, articles)
        counts.append(len(queries))

    expect(
        counts[0] == counts[1],
        f"The page that refuses ran {counts[0]} SQL queries for 2 protected articles and "
        f"{counts[1]} for 30: something runs a query per row. Fetch each blocking row's "
        "article in the same query (select_related).",
    )


@pytest.mark.task(3, points=1)
def test_what_refers_to_other_articles_blocks_nothing(admin_client, admin_user):
    expect_action_offered(admin_client, Article, ACTION)
    selected, featured, translated = make_articles(admin_user, 3)
    FeaturedSlot.objects.create(name="Home page hero", article=featured)
    Translation.objects.create(article=translated, language="fr", translator=admin_user)

    response = confirmation_page(admin_client, [selected])

    expect(
        form_with_button(response, "apply") is not None,
        "Only an article that was NOT selected fills a featured slot or has a translation, "
        "yet the page offers no 'apply' button. Look only for rows that refer to the "
        "selected articles.",
    )
    after = confirm(admin_client, response)
    gone = [a.title for a in (selected, featured, translated) if not remaining([a])]
    refused = [text for level, text in messages_of(after) if level == "error"]
    expect(
        remaining([selected]) == 0 and remaining([featured, translated]) == 2,
        "Confirming should delete the one selected article, and nothing else; it deleted "
        + (", ".join(map(repr, gone)) if gone else "nothing")
        + f", and {shown(after)}. "
        + ("After 'Yes' too, only rows that refer to the selected articles may stop the "
           "deletion." if refused else deletes_nothing(after) if not gone else ""),
    )


def expect_refused_after_yes(client, page, articles, error):
    """Press "Yes" once a selected article has become undeletable: nothing deleted, no history,
    the ERROR of the contract, and no success message."""
    __tracebackhide__ = True
    with CaptureQueriesContext(connection) as queries:
        response = confirm(client, page)
    expect(
        remaining(articles) == len(articles) and Comment.objects.count() == len(articles),
        "A selected article became undeletable after the page was shown, yet pressing "
        f"'apply' deleted {len(articles) - remaining(articles)} of {len(articles)} articles "
        f"and {len(articles) - Comment.objects.count()} of their {len(articles)} comments. "
        "Delete the whole queryset at once (self.delete_queryset), not row by row: Django "
        "checks PROTECT and RESTRICT before it deletes anything.",
    )
    errors = [text for level, text in messages_of(response) if level == "error"]
    logged = LogEntry.objects.filter(action_flag=DELETION).count()
    told = successes(response)
    if not errors:
        # Nothing deleted and no ERROR: was anything refused at all? Take the rows in the way
        # away and press "Yes" on the same page again.
        FeaturedSlot.objects.all().delete()
        Translation.objects.all().delete()
        again = confirm(client, page)
        expect(
            remaining(articles) < len(articles),
            "A selected article became undeletable after the page was shown; pressing 'apply' "
            f"deleted nothing, and {shown(response)}, no ERROR. With the row in the way "
            f"removed, the same page was confirmed again: it still deleted nothing, and "
            f"{shown(again)}. " + deletes_nothing(
                again, "So nothing was refused here: the confirming POST deletes nothing at all"
            ),
        )
    expect(
        not logged,
        f"Nothing was deleted, yet the admin history records {logged} deletions"
        + (f", though the user was shown the ERROR {errors}. " if errors else
           " and no ERROR was shown. ")
        + history_advice(queries),
    )
    expect(
        not told,
        f"Nothing was deleted, yet the user was also told {told}. "
        + ("After the ERROR, return without a success message." if errors else
           "No ERROR was shown, and with the row in the way removed the same page deleted the "
           "articles: the delete was refused, and the exception caught without telling the "
           "user. Catch it to show the ERROR of the lesson's contract, and return."),
    )
    expect_message(response, "error", error, ACTION)


def history_advice(queries):
    """Why history entries outlived a refused delete, from the SQL of the confirming POST:
    were they written inside a transaction.atomic block (a SAVEPOINT, within a test's own
    transaction) that then committed, or outside any?"""
    open_savepoints, around, rolled_back = [], None, False
    for query in queries.captured_queries:
        sql = query["sql"].lstrip()
        savepoint = re.match(r'(SAVEPOINT|RELEASE SAVEPOINT|ROLLBACK TO SAVEPOINT) "?([^"\s]+)',
                             sql)
        if savepoint:
            kind, name = savepoint.groups()
            if kind == "SAVEPOINT":
                open_savepoints.append(name)
            elif kind == "ROLLBACK TO SAVEPOINT":
                rolled_back = rolled_back or (around is not None and name in around)
            elif name in open_savepoints:
                del open_savepoints[open_savepoints.index(name):]
        elif around is None and re.match(r'INSERT INTO "?django_admin_log', sql):
            around = list(open_savepoints)
    if around and not rolled_back:
        return (
            "They were written inside a transaction.atomic block, and that block committed "
            "them: the exception was caught inside the block. An atomic block undoes its "
            "writes only when an exception leaves it: catch the exception outside the block "
            "that holds the history entries and the delete (or around a nested block that "
            "holds them both)."
        )
    if around == []:
        return (
            "No transaction.atomic block was open when they were written. Log and delete in "
            "one transaction.atomic(using=router.db_for_write(self.model)), so that the "
            "exception undoes the history entries too."
        )
    return (
        "Log and delete in one transaction.atomic(using=router.db_for_write(self.model)), and "
        "let the exception leave that block, so that it undoes the history entries too."
    )


@pytest.mark.task(3, points=2)
def test_a_row_protected_meanwhile_stops_everything_first_in_the_order(admin_client, admin_user):
    expect_action_offered(admin_client, Article, ACTION)
    articles = make_articles(admin_user, 3, comments=1)
    page = confirmation_page(admin_client, articles)
    expect_a_confirm_form(page)
    # The changelist lists the newest first: the protected row comes first.
    FeaturedSlot.objects.create(name="Home page hero", article=articles[-1])

    expect_refused_after_yes(
        admin_client, page, articles,
        "Nothing was deleted: featured slot “Home page hero” still refers to a selected "
        "article. Remove it first.",
    )


@pytest.mark.task(3, points=2)
def test_a_row_protected_meanwhile_stops_everything_last_in_the_order(admin_client, admin_user):
    expect_action_offered(admin_client, Article, ACTION)
    articles = make_articles(admin_user, 3, comments=1)
    page = confirmation_page(admin_client, articles)
    expect_a_confirm_form(page)
    # The oldest article comes last: the others would go first, one by one.
    FeaturedSlot.objects.create(name="Home page hero", article=articles[0])

    expect_refused_after_yes(
        admin_client, page, articles,
        "Nothing was deleted: featured slot “Home page hero” still refers to a selected "
        "article. Remove it first.",
    )


@pytest.mark.task(3, points=1)
def test_two_rows_protecting_say_so_in_the_plural(admin_client, admin_user):
    expect_action_offered(admin_client, Article, ACTION)
    articles = make_articles(admin_user, 3, comments=1)
    page = confirmation_page(admin_client, articles)
    expect_a_confirm_form(page)
    FeaturedSlot.objects.create(name="Sidebar pick", article=articles[0])
    FeaturedSlot.objects.create(name="Home page hero", article=articles[2])

    expect_refused_after_yes(
        admin_client, page, articles,
        "Nothing was deleted: featured slot “Home page hero”, featured slot “Sidebar pick” "
        "still refer to selected articles. Remove them first.",
    )


@pytest.mark.task(3, points=1)
def test_a_row_restricted_meanwhile_stops_everything(admin_client, admin_user):
    expect_action_offered(admin_client, Article, ACTION)
    articles = make_articles(admin_user, 3, comments=1)
    page = confirmation_page(admin_client, articles)
    expect_a_confirm_form(page)
    translation = Translation.objects.create(article=articles[1], language="de",
                                             translator=admin_user)

    expect_refused_after_yes(
        admin_client, page, articles,
        f"Nothing was deleted: translation “{translation}” still refers to a selected "
        "article. Remove it first.",
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

    if remaining(drafts):
        form = form_with_button(page, "apply")
        across = [value for name, value in form["fields"] if name == "select_across"]
        url = form_url(page, form)
        what = (
            "After 'select all 1,500', confirming deleted "
            + ("none" if remaining(drafts) == 1500 else f"{1500 - remaining(drafts)}")
            + f" of the 1,500 drafts (the response was {response.status_code}; "
            f"{shown(response)})"
        )
        problems = [
            problem for ok, problem in (
                (across == ["1"], f"the form posts select_across={across}, not ['1']"),
                (DRAFTS in url, f"the form posts to {url}, without the filter {DRAFTS}"),
            ) if not ok
        ]
        expect(
            not problems,
            what + ": " + "; ".join(problems) + ". Keep select_across=1 in the form, and let "
            "the form post to the changelist URL with its filters.",
        )
        expect(
            remaining(drafts) < 1500,
            what + f". The form is not the cause: it keeps select_across=1 and posts to {url}, "
            "so Django hands your action the 1,500 drafts again. " + deletes_nothing(response),
        )
        expect(
            False,
            what + f". The form keeps select_across=1 and posts to {url}, so Django hands your "
            "action all 1,500 drafts: delete the queryset it receives, not only the ticked rows.",
        )
    expect(remaining(published) == 5, "Articles outside the filter were deleted.")
    expect_message(response, "success", "Deleted 1500 articles.", ACTION)


# Task 5: Delete exactly what the page listed


def select_all_drafts(client, drafts):
    """The first POST of "select all" on the drafts: the page's ticked rows, select_across=1."""
    return confirmation_page(client, [], _selected_action=[a.pk for a in drafts[-2:]],
                             select_across=True, query="status__exact=draft")


def expect_asked_again(response, listed, what):
    """The WARNING of the contract, on the confirmation page, listing the rows selected now."""
    __tracebackhide__ = True
    expect_message(response, "warning", CHANGED, ACTION)
    expect(
        form_with_button(response, "apply") is not None,
        f"{what}: after the WARNING the user should see the confirmation page again, with its "
        "'apply' button, listing the rows selected now. Return the page, not None.",
    )
    page = response.content.decode()
    missing = [a.title for a in listed if a.title not in page]
    expect(not missing, f"{what}: the page shown again does not list {missing}.")


def drafts_and_published(author):
    drafts = make_articles(author, 4, title="Draft")
    published = make_articles(author, 2, title="Published", status="published")
    return drafts, published


@pytest.mark.task(5, points=2)
def test_a_row_added_to_the_filter_meanwhile_stops_the_deletion(admin_client, admin_user):
    expect_action_offered(admin_client, Article, ACTION)
    drafts, published = drafts_and_published(admin_user)
    page = select_all_drafts(admin_client, drafts)
    (late,) = make_articles(admin_user, 1, title="Late draft")  # written while the page was open

    response = confirm(admin_client, page)

    expect_nothing_deleted(
        drafts + [late], response,
        "With 'select all', a draft was written after the page listed the 4 drafts",
    )
    expect_asked_again(response, drafts + [late], "The selection grew")
    again = confirm(admin_client, response)
    expect(
        remaining(drafts + [late]) == 0 and remaining(published) == 2,
        f"Confirming the page shown again should delete the 5 drafts it listed; "
        f"{remaining(drafts + [late])} remain, and {shown(again)}.",
    )
    expect_message(again, "success", "Deleted 5 articles.", ACTION)


@pytest.mark.task(5, points=1)
def test_a_row_moved_into_the_filter_meanwhile_stops_the_deletion(admin_client, admin_user):
    expect_action_offered(admin_client, Article, ACTION)
    drafts, published = drafts_and_published(admin_user)
    page = select_all_drafts(admin_client, drafts)
    Article.objects.filter(pk=published[0].pk).update(status="draft")  # sent back meanwhile

    response = confirm(admin_client, page)

    expect_nothing_deleted(
        drafts + published, response,
        "With 'select all', a published article was sent back to draft after the page listed "
        "the 4 drafts",
    )
    expect_asked_again(response, drafts + published[:1], "A row moved into the filter")


@pytest.mark.task(5, points=1)
def test_an_old_confirmation_page_submitted_again_deletes_nothing(admin_client, admin_user):
    expect_action_offered(admin_client, Article, ACTION)
    drafts, published = drafts_and_published(admin_user)
    page = select_all_drafts(admin_client, drafts)
    confirm(admin_client, page)
    new = make_articles(admin_user, 3, title="New draft")

    response = confirm(admin_client, page)  # the browser's back button, and "Yes" again

    expect_nothing_deleted(
        new, response,
        "An old confirmation page (its 4 drafts already deleted) was submitted again after "
        "3 new drafts were written",
    )
    expect_asked_again(response, new, "An old page was submitted again")


@pytest.mark.task(5, points=2)
def test_a_row_deleted_meanwhile_makes_the_page_ask_again(admin_client, admin_user):
    expect_action_offered(admin_client, Article, ACTION)
    articles = make_articles(admin_user, 3)
    page = confirmation_page(admin_client, articles)
    expect_a_confirm_form(page)
    articles[0].delete()  # someone else was quicker

    response = confirm(admin_client, page)

    expect_nothing_deleted(
        articles[1:], response, "One of the 3 articles listed was deleted by someone else"
    )
    expect_asked_again(response, articles[1:], "A listed row vanished")
    expect(articles[0].title not in response.content.decode(),
           "The page shown again still lists the article that no longer exists.")
    expect_message(confirm(admin_client, response), "success", "Deleted 2 articles.", ACTION)


def own_fields(page):
    """The confirmation form's fields that the changelist's own form does not have."""
    __tracebackhide__ = True
    expect_a_confirm_form(page)
    fields = form_with_button(page, "apply")["fields"]
    own = [name for name, _ in fields if name not in CHANGELIST_FIELDS]
    expect(
        own,
        "The confirmation form carries nothing that ties it to the rows the page listed: "
        f"only {sorted({name for name, _ in fields})}. Add a hidden field holding a signed "
        "digest of the listed primary keys (django.core.signing).",
    )
    return fields, own


def post_fields(client, page, fields):
    data = {}
    for name, value in fields:
        data.setdefault(name, []).append(value)
    data["apply"] = dict(form_with_button(page, "apply")["buttons"])["apply"]
    return client.post(page.wsgi_request.get_full_path(), data, follow=True)


def tamper(value):
    """The value with one character changed, the last one of its first half."""
    middle = max(len(value) // 2 - 1, 0)
    changed = "A" if value[middle:middle + 1] != "A" else "B"
    return value[:middle] + changed + value[middle + 1:]


@pytest.mark.task(5, points=1)
def test_a_tampered_digest_deletes_nothing(admin_client, admin_user):
    expect_action_offered(admin_client, Article, ACTION)
    articles = make_articles(admin_user, 2)
    page = confirmation_page(admin_client, articles)
    fields, own = own_fields(page)

    response = post_fields(admin_client, page, [
        (name, tamper(value) if name in own else value) for name, value in fields
    ])

    expect_nothing_deleted(articles, response, f"The form's {own} were changed by one character")
    expect_message(response, "warning", CHANGED, ACTION)
    for name, value in fields:
        for signer in (signing.Signer(), signing.TimestampSigner()):
            try:
                signer.unsign(value)
            except signing.BadSignature:
                continue
            expect(
                name not in own,
                f"The form's {name!r} is signed with {type(signer).__name__}'s default salt, "
                "so anything else on the site signed that way would pass for it. Give the "
                "signer a salt that names this action.",
            )


@pytest.mark.task(5, points=1)
def test_a_missing_digest_deletes_nothing(admin_client, admin_user):
    expect_action_offered(admin_client, Article, ACTION)
    articles = make_articles(admin_user, 2)
    page = confirmation_page(admin_client, articles)
    fields, own = own_fields(page)

    response = post_fields(admin_client, page, [(n, v) for n, v in fields if n not in own])

    expect_nothing_deleted(articles, response, f"The POST came without the form's {own}")
    expect_message(response, "warning", CHANGED, ACTION)


@pytest.mark.task(5, points=1)
def test_a_digest_from_another_page_deletes_nothing(admin_client, admin_user):
    expect_action_offered(admin_client, Article, ACTION)
    first, second = make_articles(admin_user, 2)
    one = confirmation_page(admin_client, [first])
    _, own = own_fields(one)
    both = confirmation_page(admin_client, [first, second])
    fields, _ = own_fields(both)
    borrowed = [(n, v) for n, v in form_with_button(one, "apply")["fields"] if n in own]

    response = post_fields(admin_client, both, [(n, v) for n, v in fields if n not in own]
                           + borrowed)

    expect_nothing_deleted(
        [first, second], response,
        "Both articles were posted with the digest of a page that listed only the first",
    )
    expect_message(response, "warning", CHANGED, ACTION)


@pytest.mark.task(5, points=1)
def test_the_page_shown_again_stays_compact_with_select_all(admin_client, admin_user, settings):
    expect_action_offered(admin_client, Article, ACTION)
    # A small limit stands in for the 1,000 fields of a real changelist with 1,500 rows.
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 40
    drafts = make_articles(admin_user, 60, title="Draft")
    page = select_all_drafts(admin_client, drafts)
    (late,) = make_articles(admin_user, 1, title="Late draft")

    again = confirm(admin_client, page)
    expect_asked_again(again, [late], "A draft was added under 'select all'")
    fields = form_with_button(again, "apply")["fields"]
    expect(
        len(fields) < 40,
        f"The page shown again after the WARNING posts {len(fields)} fields for 61 rows: it "
        "lost 'select all'. Keep select_across=1 and only the ticked rows, as on the first "
        "page.",
    )
    response = confirm(admin_client, again)

    expect(remaining(drafts + [late]) == 0,
           f"Confirming the page shown again left {remaining(drafts + [late])} of 61 drafts, "
           f"and {shown(response)}.")
    expect_message(response, "success", "Deleted 61 articles.", ACTION)
