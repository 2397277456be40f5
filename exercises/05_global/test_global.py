"""Graded tests for exercise 05: one export action on every model of this exercise's site.

The tests use the exercise's own admin site (mounted at /global/admin/) as a logged-in
superuser, and Django's default site (/admin/) to check the action stayed out of it.
Run them with:

    pytest exercises/05_global
"""

from datetime import UTC, datetime

import pytest
from django.apps import apps
from django.db import connection
from django.test.utils import CaptureQueriesContext

from workbook.testing import (
    content_of,
    csv_rows,
    expect,
    expect_action_offered,
    expect_download,
    offered_actions,
    post_action,
)

Article = apps.get_model("global", "Article")
Category = apps.get_model("global", "Category")
ApiKey = apps.get_model("global", "ApiKey")
OtherArticle = apps.get_model("basic_action", "Article")  # exercise 01, on Django's site

SITE = "global_admin"
ACTION = "export_selected"
LAUNCH_DAY = datetime(2024, 5, 1, 9, 30, tzinfo=UTC)

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
    __tracebackhide__ = True
    expect_action_offered(client, Article, ACTION, site=SITE)


# Task 1: Export any model


@pytest.mark.task(1, points=2)
def test_export_selected_is_offered_on_every_exportable_model(admin_client):
    for model in (Article, Category):
        offered = offered_actions(admin_client, model, site=SITE)
        expect(
            offered.get(ACTION) == "Export selected objects",
            f"The {model.__name__} changelist of this exercise's site should offer "
            f"'{ACTION}' labelled 'Export selected objects'; it offers {offered or 'nothing'}. "
            f"Add the action to the site: site.add_action(export_selected_objects, '{ACTION}').",
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
    admin_client, admin_user, django_user_model, django_assert_num_queries
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

    with django_assert_num_queries(
        len(one),
        info="Exporting 500 articles ran more queries than exporting 1: reading a foreign key "
        "as getattr(obj, field.name) fetches the related object row by row. Use "
        "values_list(*attnames): author_id is already in the row.",
    ):
        content = content_of(export(admin_client, Article, [a.pk for a in articles[1:]]))
    expect(len(content.splitlines()) == 501, "Expected the header and 500 rows.")


@pytest.mark.task(2, points=1)
def test_text_a_spreadsheet_would_run_is_neutralised_in_any_model(admin_client):
    expect_offered_on_articles(admin_client)
    cells = ["=1+1", "+1", "-1", "@A1", "\tx", "\rx"]
    categories = [Category.objects.create(name=cell) for cell in cells]

    rows = exported(admin_client, Category, [c.pk for c in categories])

    names = sorted(row[1] for row in rows[1:])
    expected = sorted("'" + cell for cell in cells)
    expect(
        names == expected,
        f"Category names that start a formula were exported as {names}; expected {expected} "
        "(a leading ' keeps them text in a spreadsheet).",
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
