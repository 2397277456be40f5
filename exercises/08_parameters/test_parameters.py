"""Graded tests for exercise 08: actions that take a parameter, and one that needs no selection.

The tests open the article changelist and an article's change page as a browser does, choose
a category in the action bar and press Run, press the changelist's "Archive old articles"
button, or post forged forms by hand; some run the desk in Polish. Three users: a superuser;
an editor (staff who may view and change articles); a reader (view only). Run them with:

    pytest exercises/08_parameters
"""

import re
from datetime import timedelta
from html import unescape

import pytest
from django.apps import apps
from django.test import Client
from django.urls import NoReverseMatch, reverse
from django.utils import timezone, translation

from workbook.testing import (
    _send,
    change_form_actions,
    change_page,
    changelist_url,
    choose_action,
    expect,
    expect_action_offered,
    form_url,
    message_differences,
    messages_of,
    offered_actions,
    parse_page,
    post_action,
    post_data,
    press,
    refusals_unlogged,
    staff_client,
    statement_kinds,
)

Article = apps.get_model("parameters", "Article")
Category = apps.get_model("parameters", "Category")
DRAFT, PUBLISHED, ARCHIVED = (Article.Status.DRAFT, Article.Status.PUBLISHED,
                              Article.Status.ARCHIVED)
EDITOR = ["view_article", "change_article", "view_category"]
READER = ["view_article", "view_category"]
FIELD = "category"  # the action bar's field, task 1
ON_THE_PAGE = f"CHANGE_FORM-{FIELD}"  # the same field on the change page, task 2
ARCHIVE_URL_NAME = "admin:parameters_article_archive_old"
ARCHIVE_BUTTON = "archive_old"
OLD = timedelta(days=400)  # published longer ago than a year
RECENT = timedelta(days=300)

pytestmark = pytest.mark.django_db


@pytest.fixture
def editor(django_user_model):
    return staff_client(django_user_model, "parameters", EDITOR, "editor")


@pytest.fixture
def reader(django_user_model):
    return staff_client(django_user_model, "parameters", READER, "reader")


@pytest.fixture
def sports():
    return Category.objects.create(name="Sports")


@pytest.fixture
def make():
    def make(title, status=DRAFT, age=None, category=None):
        pub_date = timezone.now() - age if age is not None else None
        return Article.objects.create(title=title, status=status, pub_date=pub_date,
                                      category=category)

    return make


def select_options(page, name):
    """The texts of the options of the page's first select named `name`, as a user sees."""
    html = page.content.decode()
    found = re.search(rf'<select[^>]*name="{re.escape(name)}"[^>]*>(.*?)</select>', html, re.S)
    return [unescape(text).strip()
            for text in re.findall(r"<option[^>]*>(.*?)</option>", found[1], re.S)] if found else []


def snapshot():
    return {a.pk: (a.status, a.pub_date, a.category_id) for a in Article.objects.all()}


def listing(messages):
    return "\n".join(f"  [{tag}] {text}" for tag, text in messages) or "  (no message)"


def expect_messages(response, expected, what, advice):
    """Fail unless the page the response ended on shows exactly the messages `expected`."""
    __tracebackhide__ = True
    shown = messages_of(response)
    expect(
        shown == expected,
        f"After {what}, the page should show exactly:\n{listing(expected)}\n"
        f"It shows:\n{listing(shown)}\nWhat differs:\n"
        + "".join(f"  - {note}\n" for note in message_differences(expected, shown)) + advice,
    )


def expect_one_error(response, before, what, text=None):
    """Fail unless nothing changed and the page says why in one ERROR message (`text`, when
    the lesson gives it)."""
    __tracebackhide__ = True
    expect(snapshot() == before, f"{what} changed articles: nothing may change.")
    expect(
        response.status_code == 200,
        f"{what} answered {response.status_code}; expected the page again with a message "
        "(a redirect, then 200), never an error page.",
    )
    shown = messages_of(response)
    expect(
        [tag for tag, _ in shown] == ["error"],
        f"{what} changed nothing, as it should; the page should then say why in exactly one "
        f"ERROR message. It shows:\n{listing(shown)}\nThe lesson's task 1 says which level, and "
        "what happens when the form carries no valid category.",
    )
    if text is not None:
        expect_messages(response, [("error", text)], what, "The lesson's task 1 gives the "
                        "message for a missing category.")


def moved(count, category):
    noun = "article" if count == 1 else "articles"
    return [("success", f"Moved {count} {noun} to {category}.")]


def archived(count):
    noun = "article" if count == 1 else "articles"
    return [("success", f"Archived {count} {noun} published over a year ago.")]


NO_CATEGORY = "Choose a category to move the articles to."
TASK_1_MESSAGES = "The lesson's task 1 gives each message, for one article and for many."


def expect_the_field_in_the_bar(client):
    """The changelist (with at least one article), once its action bar has the field."""
    __tracebackhide__ = True
    page = _send("Loading the Article changelist", client.get, changelist_url(Article))
    bar = next((f for f in parse_page(page).forms
                if any(name == "action" for name, _ in f["fields"])), None)
    fields = dict(bar["fields"]) if bar else {}
    expect(
        FIELD in fields,
        f"The changelist's action bar has no field named '{FIELD}'; its fields are "
        f"{sorted(fields) or 'none'}. Which ModelAdmin attribute names the form the action "
        "bar shows, and which class must that form extend?",
    )
    return page


def run_move(client, selected, category, follow=True, offered=True):
    """Choose `category` in the changelist's action bar, tick `selected`, press Run (first
    checking, unless told not to, that the changelist offers the action to this user)."""
    __tracebackhide__ = True
    if offered:
        expect_action_offered(client, Article, "move_to_category")
    extra = {} if category is None else {FIELD: str(category)}
    return _send("Running 'move_to_category' from the changelist", post_action, client,
                 Article, "move_to_category", [a.pk for a in selected], follow=follow,
                 **extra)


# Task 1: Move to a category chosen in the action bar


@pytest.mark.task(1, points=2)
def test_the_action_bar_offers_the_move_and_a_category_to_choose(admin_client, make, sports):
    news = Category.objects.create(name="News")
    make("Listed")  # an empty changelist shows no action bar
    expect_action_offered(admin_client, Article, "move_to_category", "Move to category")
    page = expect_the_field_in_the_bar(admin_client)
    choices = set(select_options(page, FIELD)) - {"", "---------"}
    expect(
        choices == {str(sports), str(news)},
        f"The '{FIELD}' field offers {sorted(choices) or 'nothing'}; expected every category: "
        f"{sorted([str(sports), str(news)])}.",
    )


@pytest.mark.task(1, points=3)
@pytest.mark.parametrize("count", [1, 3])
def test_moving_moves_exactly_the_selected_articles_and_says_so(admin_client, make, sports,
                                                               count):
    chosen = [make(f"Chosen {n}") for n in range(count)]
    other = make("Not chosen", category=None)
    response = run_move(admin_client, chosen, sports.pk)
    expect(
        response.status_code == 200 and response.redirect_chain,
        f"Running 'move_to_category' answered {response.status_code}"
        + ("" if response.redirect_chain else " without a redirect")
        + "; expected a redirect back to the changelist, as after any action that returns "
        "None.",
    )
    categories = {a.title: a.category_id for a in Article.objects.all()}
    expect(
        all(categories[a.title] == sports.pk for a in chosen)
        and categories[other.title] is None,
        f"After moving {count} selected article(s) to {sports}, the articles' categories are "
        f"{ {t: (Category.objects.get(pk=c).name if c else None) for t, c in categories.items()} }"
        f"; expected the selected ones in {sports} and 'Not chosen' left alone.",
    )
    expect_messages(response, moved(count, sports), f"moving {count} article(s) to {sports}",
                    TASK_1_MESSAGES)


@pytest.mark.task(1, points=3)
@pytest.mark.parametrize("value", [None, "", "999999", "abc"],
                         ids=["missing", "blank", "unknown", "not-a-number"])
def test_without_a_valid_category_nothing_moves_and_the_page_says_why(admin_client, make,
                                                                     sports, value):
    articles = [make("One", category=sports), make("Two")]
    before = snapshot()
    what = ("Running 'move_to_category' with "
            + ("no category field" if value is None else f"{FIELD}={value!r}"))
    response = run_move(admin_client, articles, value)
    expect_one_error(response, before, what, NO_CATEGORY if not value else None)


@pytest.mark.task(1, points=2)
def test_the_other_actions_still_run_with_no_category_chosen(admin_client, make):
    article = make("To delete")
    expect_the_field_in_the_bar(admin_client)
    response = _send("Running 'delete_selected' with no category chosen", post_action,
                     admin_client, Article, "delete_selected", [article.pk], follow=True)
    shown = messages_of(response)
    expect(
        response.status_code == 200 and response.templates
        and response.templates[0].name == "admin/delete_selected_confirmation.html",
        "The action bar's form carries every action of the bar, not only yours: with no "
        "category chosen, 'delete_selected' should still ask its confirmation question. "
        f"It answered {response.status_code} with:\n{listing(shown)}\n"
        "What does Django do with the whole bar when one of its form's fields is required "
        "and left empty?",
    )


@pytest.mark.task(1, points=2)
def test_moving_runs_one_update_whatever_the_selection(admin_client, make, sports):
    few = [make("Few")]
    many = [make(f"Many {n}") for n in range(150)]
    expect_action_offered(admin_client, Article, "move_to_category")
    runs = {}
    for name, selected in (("1", few), ("150", many)):
        kinds, shown = statement_kinds(admin_client, Article, "move_to_category",
                                       [a.pk for a in selected], **{FIELD: str(sports.pk)})
        runs[name] = (kinds, shown)
    expect(
        runs["1"][0].count("UPDATE") == 1 and runs["150"][0] == runs["1"][0],
        "Moving 1 article and moving 150 should run the same statements, one UPDATE among "
        f"them. For 1 the action ran:\n{runs['1'][1]}\nFor 150:\n{runs['150'][1]}",
    )
    expect(
        Article.objects.filter(category=sports).count() == 151,
        "The statements ran, but not every selected article is in the chosen category.",
    )


@pytest.mark.task(1, points=2)
def test_a_reader_is_not_offered_the_move_and_cannot_forge_it(editor, reader, make, sports):
    article = make("Stays")
    expect_action_offered(editor, Article, "move_to_category")
    offered = offered_actions(reader, Article)
    expect(
        "move_to_category" not in offered,
        "A staff user who may only view articles is offered 'move_to_category', which "
        "changes them: which argument of @admin.action keeps it from them?",
    )
    before = snapshot()
    run_move(reader, [article], sports.pk, offered=False)
    expect(snapshot() == before, "A forged POST of 'move_to_category' by a user who may only "
           "view articles moved them: the action must refuse users without the change "
           "permission.")


# Task 2: The same action on the change page


def choose_on_the_page(client, article, category):
    """The change page with 'move_to_category' picked and `category` chosen (None: left as
    the page has it), ready to press Run: (url, fields)."""
    __tracebackhide__ = True
    _, url, fields = choose_action(client, article, "move_to_category")
    names = {name for name, _ in fields}
    expect(
        ON_THE_PAGE in names,
        f"The change page's action bar has no '{ON_THE_PAGE}' field. The action bar there is "
        "the same form as on the changelist: which attribute gives it your field?",
    )
    if category is not None:
        fields = [(n, v) for n, v in fields if n != ON_THE_PAGE] + [(ON_THE_PAGE, str(category))]
    return url, fields


@pytest.mark.task(2, points=2)
def test_the_change_page_offers_the_move_and_its_category_field(admin_client, make, sports):
    article = make("Here")
    offered = change_form_actions(change_page(admin_client, article))
    expect(
        offered.get("move_to_category") == "Move to category",
        f"The change page's dropdown offers {offered or 'nothing'}; expected "
        "'move_to_category' labelled 'Move to category'. Where does an action say it belongs "
        "on the change page too?",
    )
    choose_on_the_page(admin_client, article, None)


@pytest.mark.task(2, points=4)
def test_moving_from_the_change_page_moves_that_article_and_comes_back(admin_client, make,
                                                                      sports):
    article, other = make("This one"), make("Not this one")
    url, fields = choose_on_the_page(admin_client, article, sports.pk)
    response = press(admin_client, url, fields, "index", "0")
    expect(
        response.status_code == 302 and response.url == url,
        f"Pressing Run on the change page answered {response.status_code}"
        + (f", a redirect to {response.url}" if response.status_code == 302 else "")
        + f"; expected a redirect back to {url}. On the change page the bar's fields are "
        f"posted as '{ON_THE_PAGE}', not '{FIELD}': does your action read them there?",
    )
    article.refresh_from_db()
    other.refresh_from_db()
    expect(
        article.category_id == sports.pk and other.category_id is None,
        f"After Run on the change page of 'This one' with {sports} chosen, it is in "
        f"{article.category or 'no category'} and 'Not this one' is in "
        f"{other.category or 'no category'}; expected 'This one' alone in {sports}.",
    )
    page = _send("Loading the change page again", admin_client.get, url)
    expect_messages(page, moved(1, sports), "moving one article from its change page",
                    TASK_1_MESSAGES)


@pytest.mark.task(2, points=2)
def test_with_no_category_on_the_change_page_nothing_moves_and_it_says_why(admin_client,
                                                                          make, sports):
    article = make("Stays put", category=sports)
    url, fields = choose_on_the_page(admin_client, article, "")
    before = snapshot()
    response = press(admin_client, url, fields, "index", "0", follow=True)
    expect_one_error(response, before,
                     "Pressing Run on the change page with no category chosen", NO_CATEGORY)


# Task 3: A button that needs no selection


def archive_url():
    __tracebackhide__ = True
    try:
        url = reverse(ARCHIVE_URL_NAME)
    except NoReverseMatch:
        url = None
    expect(url is not None, f"No URL is named '{ARCHIVE_URL_NAME}'. Which ModelAdmin method "
           "adds URLs of your own under the changelist's, and what name does the button's "
           "template look up?")
    return url


def old_and_new(make):
    return {
        "old published": make("Old published", PUBLISHED, OLD),
        "older published": make("Older published", PUBLISHED, OLD * 2),
        "recent published": make("Recent published", PUBLISHED, RECENT),
        "old draft": make("Old draft", DRAFT, OLD),
        "old archived": make("Old archived", ARCHIVED, OLD),
    }


def statuses():
    return {a.title: a.status for a in Article.objects.all()}


def expect_nothing_archived(before, what):
    __tracebackhide__ = True
    expect(snapshot() == before, f"{what} changed articles; nothing may change.")


@pytest.mark.task(3, points=4)
def test_the_button_archives_every_old_published_article_and_says_how_many(admin_client,
                                                                          make):
    old_and_new(make)
    url = archive_url()
    page = _send("Loading the Article changelist", admin_client.get, changelist_url(Article))
    form = next((f for f in parse_page(page).forms
                 if any(n == ARCHIVE_BUTTON for n, _ in f["buttons"])), None)
    expect(form is not None and form_url(page, form) == url,
           f"The changelist shows no button '{ARCHIVE_BUTTON}' posting to {url}.")
    data = post_data(form["fields"])
    data[ARCHIVE_BUTTON] = ""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        response = _send("Pressing 'Archive old articles'", admin_client.post, url, data)
    table = f'"{Article._meta.db_table}"'
    updates = [q["sql"] for q in queries.captured_queries
               if q["sql"].startswith("UPDATE") and table in q["sql"]]
    expect(
        response.status_code == 302 and response.url == changelist_url(Article),
        f"Pressing the button answered {response.status_code}"
        + (f", a redirect to {response.url}" if response.status_code == 302 else "")
        + f"; expected a redirect to the changelist, {changelist_url(Article)}, where the "
        "message shows.",
    )
    expected = {"Old published": ARCHIVED, "Older published": ARCHIVED,
                "Recent published": PUBLISHED, "Old draft": DRAFT, "Old archived": ARCHIVED}
    expect(
        statuses() == expected,
        f"After the button the statuses are {statuses()}; expected {expected}: only "
        "published articles whose publication is more than a year (YEAR_DAYS) old.",
    )
    expect(len(updates) == 1, f"The button ran {len(updates)} UPDATEs on the articles' "
           "table; one does it, however many articles are old.")
    listing_page = _send("Loading the changelist", admin_client.get, response.url)
    expect_messages(listing_page, archived(2), "archiving two old articles",
                    "The lesson's task 3 gives the message, for one article and for many.")


def expect_refused(make, what, send, status, why):
    """Fail unless the request `send()` makes to the button's URL is answered `status`, with
    old articles to archive there, and none of them changes."""
    __tracebackhide__ = True
    old_and_new(make)
    before = snapshot()
    with refusals_unlogged(), refusals_unlogged("django.security.csrf"):
        response = _send(what, send, archive_url())
    expect(response.status_code == status,
           f"{what} answered {response.status_code}; expected {status}: {why}")
    expect_nothing_archived(before, what)


@pytest.mark.task(3, points=2)
def test_a_get_of_the_button_s_url_changes_nothing(admin_client, make):
    expect_refused(make, "A GET of the button's URL", admin_client.get, 405,
                   "a link, a prefetching browser or a crawler sends GETs, and none may "
                   "change data.")


@pytest.mark.task(3, points=2)
def test_someone_not_logged_in_is_sent_to_log_in(client, make):
    old_and_new(make)
    before = snapshot()
    response = _send("Posting to the button's URL, not logged in", client.post, archive_url())
    login = reverse("admin:login")
    expect(
        response.status_code == 302 and response.url.startswith(login),
        f"A POST to {archive_url()} from someone not logged in answered "
        f"{response.status_code}; expected a redirect to the admin's login page ({login}), "
        "as every admin page does. What wraps the admin's own views, and yours?",
    )
    expect_nothing_archived(before, "A POST from someone not logged in")


@pytest.mark.task(3, points=2)
def test_a_reader_may_not_archive(reader, make):
    expect_refused(make, "A POST to the button's URL from staff who may only view articles",
                   reader.post, 403, "the change permission on articles is needed.")


@pytest.mark.task(3, points=2)
def test_a_post_from_another_site_is_refused(django_user_model, make):
    forged = Client(enforce_csrf_checks=True)
    forged.force_login(django_user_model.objects.create_superuser("boss", password="x"))
    expect_refused(make, "A POST to the button's URL without a CSRF token", forged.post, 403,
                   "a page on another site could post it with the user's cookies.")


# Task 4: In the user's language


# Polish has a form for one, for 2-4 (22-24, ...) and for 5-21 (25-31, ...): English's two
# forms cannot say all three.
POLISH_MOVED = {
    1: "Przeniesiono 1 artykuł do kategorii Sport.",
    3: "Przeniesiono 3 artykuły do kategorii Sport.",
    5: "Przeniesiono 5 artykułów do kategorii Sport.",
}
POLISH_ARCHIVED = {
    1: "Zarchiwizowano 1 artykuł opublikowany ponad rok temu.",
    2: "Zarchiwizowano 2 artykuły opublikowane ponad rok temu.",
    5: "Zarchiwizowano 5 artykułów opublikowanych ponad rok temu.",
}
IN_POLISH = (
    " The exercise's locale/pl catalog translates the English texts of the lesson's tasks, "
    "word for word: a text that differs is not found there."
)


@pytest.mark.task(4, points=2)
def test_in_polish_the_action_is_offered_in_polish(admin_client):
    with translation.override("pl"):
        offered = offered_actions(admin_client, Article)
    expect(
        offered.get("move_to_category") == "Przenieś do kategorii",
        f"Under Polish the dropdown offers {offered}; expected 'move_to_category' labelled "
        "'Przenieś do kategorii'. When is your description translated: when the module is "
        "imported, or each time a page shows it?" + IN_POLISH,
    )


@pytest.mark.task(4, points=1)
@pytest.mark.parametrize("count", sorted(POLISH_MOVED))
def test_in_polish_the_move_says_how_many_in_the_right_form(admin_client, make, count):
    sport = Category.objects.create(name="Sport")
    chosen = [make(f"Artykuł {n}") for n in range(count)]
    with translation.override("pl"):
        response = run_move(admin_client, chosen, sport.pk)
    expect(Article.objects.filter(category=sport).count() == count,
           f"Under Polish, moving {count} articles moved "
           f"{Article.objects.filter(category=sport).count()}.")
    shown = messages_of(response)
    expect(
        shown == [("success", POLISH_MOVED[count])],
        f"Under Polish, moving {count} articles should say:\n  [success] {POLISH_MOVED[count]}"
        f"\nIt says:\n{listing(shown)}\nWhich function picks among a language's plural forms, "
        "where English has only two?" + IN_POLISH,
    )


@pytest.mark.task(4, points=1)
@pytest.mark.parametrize("count", sorted(POLISH_ARCHIVED))
def test_in_polish_the_button_says_how_many_in_the_right_form(admin_client, make, count):
    for n in range(count):
        make(f"Stary {n}", PUBLISHED, OLD)
    url = archive_url()
    with translation.override("pl"):
        response = _send("Pressing 'Archive old articles' under Polish", admin_client.post,
                         url, follow=True)
    shown = messages_of(response)
    expect(
        shown == [("success", POLISH_ARCHIVED[count])],
        f"Under Polish, archiving {count} articles should say:\n"
        f"  [success] {POLISH_ARCHIVED[count]}\nIt says:\n{listing(shown)}\n"
        "Which function picks among a language's plural forms?" + IN_POLISH,
    )
