"""Graded tests for exercise 05: one export action on every model of this exercise's site.

The tests use the exercise's own admin site (mounted at /global/admin/) as a logged-in
superuser, and Django's default site (/admin/) to check the action stayed out of it.
Run them with:

    pytest exercises/05_global
"""

import types
from datetime import UTC, datetime
from importlib import import_module

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import path

from workbook.testing import (
    content_of,
    csv_rows,
    expect,
    expect_download,
    expect_num_queries,
    offered_actions,
    peak_memory_while_reading,
    post_action,
    refuses_nul,
)

Article = apps.get_model("global", "Article")
Category = apps.get_model("global", "Category")
ApiKey = apps.get_model("global", "ApiKey")
OtherArticle = apps.get_model("basic_action", "Article")  # exercise 01, on Django's site

SITE = "global_admin"
ACTION = "export_selected"
LAUNCH_DAY = datetime(2024, 5, 1, 9, 30, tzinfo=UTC)
BATCH_SIZE = 2000  # the stub's: rows per chunk read and per piece of CSV sent

pytestmark = pytest.mark.django_db


def export(client, model, selected, **options):
    return post_action(client, model, ACTION, selected, site=SITE, follow=False, **options)


def exported(client, model, selected, **options):
    """The exported rows, header first, after checking the download's type and name."""
    __tracebackhide__ = True
    response = export(client, model, selected, **options)
    opts = model._meta
    expect_download(
        response, ACTION, "text/csv; charset=utf-8", f"{opts.app_label}.{opts.model_name}.csv"
    )
    return csv_rows(response)


def expect_offered_on_articles(client):
    """Fail with directions unless this exercise's Article changelist offers the export."""
    __tracebackhide__ = True
    offered = offered_actions(client, Article, site=SITE)
    expect(
        ACTION in offered,
        f"The Article changelist of this exercise's site offers no action named '{ACTION}'.\n"
        f"Actions offered now: {', '.join(sorted(offered)) or 'none'}.\n"
        "An action every model of a site offers belongs to the site itself, not to one "
        f"ModelAdmin, under the name '{ACTION}' (lesson 05, 'The actions of a site' and "
        "task 1).",
    )


def streamed_peak_memory(client, model, selected, **options):
    """Peak memory and lines of the export, read to the end."""
    return peak_memory_while_reading(lambda: export(client, model, selected, **options))


@pytest.fixture
def group_registered_later(settings):
    """auth.Group, registered on this exercise's site with a plain ModelAdmin nobody wrote
    for it, as a model added next year would be; its changelist served at /global/admin/.

    The workbook's URLconf took the site's URLs when it was imported, so the test serves
    the site from a URLconf of its own, built after the registration. Both are undone
    afterwards.
    """
    site = import_module("exercises.05_global.sites").site
    site.register(Group)
    urlconf = types.ModuleType("group_registered_later_urls")
    urlconf.urlpatterns = [path("admin/", admin.site.urls), path("global/admin/", site.urls)]
    settings.ROOT_URLCONF = urlconf
    try:
        yield Group
    finally:
        site.unregister(Group)


# Task 1: Export any model


@pytest.mark.task(1, points=2)
def test_export_selected_is_offered_on_every_exportable_model(admin_client):
    for model in (Article, Category):
        offered = offered_actions(admin_client, model, site=SITE)
        expect(
            offered.get(ACTION) == "Export selected objects",
            f"The {model.__name__} changelist of this exercise's site should offer "
            f"'{ACTION}' labelled 'Export selected objects'; it offers {offered or 'nothing'}. "
            f"Add the action to this exercise's site with add_action(), under the name "
            f"'{ACTION}' (lesson 05, task 1).",
        )


@pytest.mark.task(1, points=2)
def test_articles_export_every_concrete_field(admin_client, admin_user):
    expect_offered_on_articles(admin_client)
    news = Category.objects.create(name="News")
    dated = Article.objects.create(
        title="Dated", author=admin_user, category=news, status="published", pub_date=LAUNCH_DAY
    )
    bare = Article.objects.create(title="Bare", author=admin_user)

    rows = exported(admin_client, Article, [dated.pk, bare.pk])

    expected = [
        ["id", "title", "status", "pub_date", "author", "category"],
        [str(bare.pk), "Bare", "draft", "", str(admin_user.pk), ""],
        [str(dated.pk), "Dated", "published", "2024-05-01T09:30:00+00:00", str(admin_user.pk),
         str(news.pk)],
    ]
    expect(
        rows == expected,
        f"The article export reads\n  {rows}\nexpected\n  {expected}\nThe header is the "
        "model's concrete field names; a foreign key is its related primary key (the field's "
        "attname); a date is isoformat(); an empty value is ''.",
    )


@pytest.mark.task(1, points=1)
def test_categories_export_with_their_own_file_name(admin_client):
    expect_offered_on_articles(admin_client)
    news, sport = Category.objects.create(name="News"), Category.objects.create(name="Sport")

    rows = exported(admin_client, Category, [news.pk, sport.pk])

    expected = [["id", "name"], [str(news.pk), "News"], [str(sport.pk), "Sport"]]
    expect(
        rows == expected,
        f"The category export reads {rows}; expected {expected}. The action must not know "
        "any model: read the fields from modeladmin.model._meta.",
    )


@pytest.mark.task(1, points=1)
def test_select_all_on_a_filtered_changelist_exports_every_match(admin_client, admin_user):
    expect_offered_on_articles(admin_client)
    news = Category.objects.create(name="News")
    in_news = [Article.objects.create(title=f"N{i}", author=admin_user, category=news)
               for i in range(3)]
    Article.objects.create(title="Elsewhere", author=admin_user)

    rows = exported(
        admin_client, Article, [in_news[0].pk], select_across=True,
        query=f"category__id__exact={news.pk}",
    )

    titles = sorted(row[1] for row in rows[1:])
    expect(
        titles == ["N0", "N1", "N2"],
        f"'Select all' on the changelist filtered to News should export 3 articles; got {titles}.",
    )


@pytest.mark.task(1, points=2)
def test_a_model_registered_later_on_the_site_offers_it_too(
    admin_client, group_registered_later
):
    expect_offered_on_articles(admin_client)

    offered = offered_actions(admin_client, group_registered_later, site=SITE)

    expect(
        offered.get(ACTION) == "Export selected objects",
        f"A Group admin registered on this exercise's site, with no actions of its own, "
        f"offers {offered or 'nothing'}; a site-wide action reaches it too. Listing the "
        "export in each ModelAdmin's actions reaches only the admins you wrote: add it to "
        f"the site itself, with the site's add_action(), under the name '{ACTION}'.",
    )


@pytest.mark.task(1, points=1)
def test_rows_deleted_since_the_page_was_shown_give_a_file_with_only_the_header(
    admin_client,
):
    expect_offered_on_articles(admin_client)
    gone = Category.objects.create(name="Gone")
    gone_pk = gone.pk
    gone.delete()  # someone else deleted it while the changelist was open

    rows = exported(admin_client, Category, [gone_pk])

    expect(
        rows == [["id", "name"]],
        f"The selected category no longer exists; the file reads {rows}. The truthful "
        "answer is the header and no rows, [['id', 'name']]: write the header even when the "
        "queryset is empty.",
    )


# Task 2: Stream it, fast and safe


@pytest.mark.task(2, points=1)
def test_the_export_streams(admin_client, admin_user):
    expect_offered_on_articles(admin_client)
    articles = Article.objects.bulk_create(
        Article(title=f"A{i}", author=admin_user) for i in range(4500)
    )

    response = export(admin_client, Article, [articles[0].pk], select_across=True)

    expect(
        response.streaming,
        f"The export returned a {type(response).__name__}: return a StreamingHttpResponse.",
    )
    chunks = [chunk for chunk in response.streaming_content if chunk]
    expect(
        len(chunks) > 1,
        "4,500 articles arrived as a single piece: yield the CSV text a batch at a time.",
    )


@pytest.mark.task(2, points=2)
def test_the_export_runs_as_many_queries_for_500_rows_as_for_1(
    admin_client, admin_user, django_user_model
):
    expect_offered_on_articles(admin_client)
    authors = [django_user_model.objects.create_user(f"a{i}") for i in range(5)]
    categories = [Category.objects.create(name=f"C{i}") for i in range(5)]
    articles = Article.objects.bulk_create(
        Article(title=f"A{i}", author=authors[i % 5], category=categories[i % 5])
        for i in range(501)
    )
    with CaptureQueriesContext(connection) as one:
        content_of(export(admin_client, Article, [articles[0].pk]))

    with expect_num_queries(
        len(one),
        info="Exporting 500 articles ran more queries than exporting 1: getattr(obj, "
        "field.name) on a foreign key the changelist did not join (author: it is not in "
        "list_display) fetches the related object, one query per row. Use "
        "values_list(*attnames): author_id is already in the row.",
    ):
        content = content_of(export(admin_client, Article, [a.pk for a in articles[1:]]))
    expect(len(content.splitlines()) == 501, "Expected the header and 500 rows.")


@pytest.mark.task(2, points=2)
def test_every_row_past_the_first_batch_arrives_once_in_the_changelists_order(
    admin_client, admin_user
):
    expect_offered_on_articles(admin_client)
    count = 2 * BATCH_SIZE + 500  # two full batches and part of a third
    # Ids ascend while the titles descend, so the id order is not the title order.
    articles = Article.objects.bulk_create(
        Article(title=f"Article {n:05d}", author=admin_user) for n in range(count, 0, -1)
    )
    with CaptureQueriesContext(connection) as one:
        content_of(export(admin_client, Article, [articles[0].pk]))

    # o=1 is the changelist sorted by title, as clicking the "Title" header does.
    with expect_num_queries(
        len(one),
        info=f"Exporting {count:,} articles ran more queries than exporting 1: read the rows "
        "with one query, values_list(...).iterator(chunk_size=...), not a query per batch "
        "or per row.",
    ):
        rows = exported(admin_client, Article, [articles[0].pk], select_across=True,
                        query="o=1")

    header = rows[0]
    expect(
        rows.count(header) == 1,
        f"The file of {count:,} articles has the header row {rows.count(header)} times; it "
        "belongs once, at the top. Write it before the first batch, not once per batch.",
    )
    titles = [row[1] for row in rows[1:]]
    expected = [f"Article {n:05d}" for n in range(1, count + 1)]
    missing = sorted(set(expected) - set(titles))
    expect(
        len(titles) == count and not missing,
        f"Select all on {count:,} articles ({BATCH_SIZE:,} a batch) gave {len(titles):,} rows; "
        f"{len(missing):,} articles are missing, for example {missing[:3]}. Every batch goes "
        "into the file, the last, shorter one too, none twice, and no text of an earlier "
        "batch left in the buffer.",
    )
    expect(
        titles == expected,
        f"All {count:,} rows arrived, but not in the order of the changelist sorted by title "
        f"(the first ones are {titles[:3]}). Keep the queryset's order in every batch: no "
        "order_by() of your own.",
    )


@pytest.mark.task(2, points=2)
def test_memory_stays_flat_when_the_selection_grows_fourfold(admin_client):
    expect_offered_on_articles(admin_client)
    small, large = 2 * BATCH_SIZE, 8 * BATCH_SIZE  # both past the first batch
    name = ("a category name long enough to make a big file " * 2)[:88]  # fits 100 chars
    Category.objects.bulk_create(
        Category(name=f"{'Few' if i < small else 'Many'} {name}{i}") for i in range(large)
    )
    first = Category.objects.order_by("pk").first().pk
    streamed_peak_memory(admin_client, Category, [first])  # once first: imports and caches

    peak_small, lines_small = streamed_peak_memory(
        admin_client, Category, [first], select_across=True, query="q=Few"
    )
    peak_large, lines_large = streamed_peak_memory(
        admin_client, Category, [first], select_across=True
    )

    expect(
        (lines_small, lines_large) == (small + 1, large + 1),
        f"Exporting {small:,} and then {large:,} categories gave files of {lines_small:,} "
        f"and {lines_large:,} lines; expected the header and one line per category.",
    )
    growth = peak_large - peak_small
    expect(
        growth < 500_000,
        f"Exporting {small:,} categories held at most {peak_small / 1e6:.1f} MB of Python "
        f"objects at once; exporting {large:,} held {peak_large / 1e6:.1f} MB, "
        f"{growth / 1e6:.1f} MB more (measured with tracemalloc). Something keeps every row: "
        "a queryset read whole (use .iterator(chunk_size=...)), an HttpResponse or a list "
        "holding the whole file. Keep one batch in memory at a time.",
    )


# No cell may begin with one of these: the seven of OWASP's CSV Injection page, and NUL
# (OWASP ASVS 5.0, V1.2.10), which LibreOffice Calc drops before running the "=" behind it.
UNSAFE_STARTS = {
    "equals": "=",
    "plus": "+",
    "minus": "-",
    "at": "@",
    "tab": "\t",
    "carriage-return": "\r",
    "line-feed": "\n",
    "nul": "\0",
}


@pytest.mark.task(2, points=1)
@pytest.mark.parametrize("start", UNSAFE_STARTS.values(), ids=UNSAFE_STARTS.keys())
def test_text_a_spreadsheet_could_run_is_neutralised_in_any_model(admin_client, start):
    expect_offered_on_articles(admin_client)
    if start == "\0" and refuses_nul(Category, name="\x00SUM(A1)"):
        return  # PostgreSQL stores no NUL, so no cell it exports can start with one
    # The same start first, and behind spaces (a spreadsheet may trim them).
    names = [f"{start}1+1", f"  {start}SUM(A1)"]
    categories = [Category.objects.create(name=name) for name in names]

    rows = exported(admin_client, Category, [c.pk for c in categories])

    exported_names = sorted(row[1] for row in rows[1:])
    expected = sorted("'" + name for name in names)
    expect(
        exported_names == expected,
        f"Categories named {names} (a text field of another model) were exported as "
        f"{exported_names}; expected {expected}. Any text cell whose first character other "
        "than a space is =, +, -, @, a tab, a carriage return, a line feed or NUL gets a ' "
        "in front, whatever the model.",
    )


@pytest.mark.task(2, points=1)
def test_other_text_leaves_exactly_as_it_was_stored(admin_client, admin_user):
    expect_offered_on_articles(admin_client)
    # Triggers further on, a separator or a quote that must not start a new cell, newlines,
    # non-ASCII: csv.writer's quoting carries all of it; none of it needs the '.
    titles = [
        "E = mc² - a primer",
        "  Indented, with a tab\tinside",
        'Commas, "quotes", a,=1+1',
        "Two\nlines",
        "Grüße, 日本語 and emoji 🎉",
    ]
    articles = [Article.objects.create(title=t, author=admin_user) for t in titles]

    rows = exported(admin_client, Article, [a.pk for a in articles])

    exported_titles = sorted(row[1] for row in rows[1:])
    expect(
        exported_titles == sorted(titles),
        f"Read back with Python's csv module, the titles are {exported_titles}; expected "
        f"them as stored, {sorted(titles)}. Only a cell that starts with a formula sign "
        "(after any spaces) gets the '; let csv.writer quote the rest, in UTF-8.",
    )


# Task 3: Keep the keys out


@pytest.mark.task(3, points=2)
def test_api_keys_are_not_offered_the_export(admin_client):
    expect_offered_on_articles(admin_client)

    offered = offered_actions(admin_client, ApiKey, site=SITE)

    expect(
        ACTION not in offered,
        f"The API key changelist offers '{ACTION}': anyone with access could download every "
        "secret at once. In ApiKeyAdmin.get_actions(), pop it from the actions.",
    )
    expect(
        "delete_selected" in offered,
        f"The API key changelist should still offer delete_selected; it offers {offered}. "
        "Remove only the export (actions = None would remove every action).",
    )


@pytest.mark.task(3, points=2)
def test_a_forged_export_of_api_keys_exports_nothing(admin_client):
    expect_offered_on_articles(admin_client)
    key = ApiKey.objects.create(name="Partner", key="sk_live_0123456789abcdef")

    response = export(admin_client, ApiKey, [key.pk])

    body = content_of(response)
    expect(
        b"sk_live_0123456789abcdef" not in body and not response.get("Content-Disposition"),
        f"A forged POST of '{ACTION}' on the API key changelist answered "
        f"{response.status_code} with a download. Removing the action in get_actions() makes "
        "Django refuse it.",
    )


# Task 4: Stay on your own site


@pytest.mark.task(4, points=1)
def test_the_action_stays_off_djangos_default_site(admin_client):
    expect_offered_on_articles(admin_client)

    offered = offered_actions(admin_client, OtherArticle)

    expect(
        ACTION not in offered,
        f"Exercise 01's Article changelist on Django's default site now offers '{ACTION}'. "
        "admin.site.add_action() reaches every model of every exercise: add it to this "
        "exercise's own site (from .sites import site).",
    )
