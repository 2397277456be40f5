"""Graded tests for exercise 02: they export from the admin as a logged-in superuser does.

Each test posts the Article changelist's action form with Django's test client, then reads
the download back with Python's csv module. Run them with:

    pytest exercises/02_export
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
    post_action,
)

Article = apps.get_model("export", "Article")

DRAFT, PUBLISHED = Article.Status.DRAFT, Article.Status.PUBLISHED
HEADER = ["Title", "Author", "Status", "Published"]
LAUNCH_DAY = datetime(2024, 5, 1, 9, 30, tzinfo=UTC)

pytestmark = pytest.mark.django_db


def make_articles(author, count, title="Article", **fields):
    return Article.objects.bulk_create(
        Article(title=f"{title} {i}", author=author, **fields) for i in range(1, count + 1)
    )


def export(client, selected, **options):
    return post_action(client, Article, "export_as_csv", selected, follow=False, **options)


def exported_rows(client, selected, **options):
    """The data rows of the exported file, after checking it is a CSV download."""
    __tracebackhide__ = True
    response = export(client, selected, **options)
    expect_download(response, "export_as_csv", "text/csv; charset=utf-8", "articles.csv")
    rows = csv_rows(response)
    expect(
        rows[:1] == [HEADER],
        f"The file should start with the header row {HEADER}; it starts with {rows[:1]}.",
    )
    return rows[1:]


# Task 1: Export the selected articles


@pytest.mark.task(1, points=1)
def test_export_as_csv_is_offered_in_the_dropdown(admin_client):
    expect_action_offered(admin_client, Article, "export_as_csv", "Export selected as CSV")


@pytest.mark.task(1, points=2)
def test_the_export_is_a_csv_attachment_named_articles_csv(admin_client, admin_user):
    expect_action_offered(admin_client, Article, "export_as_csv")
    (article,) = make_articles(admin_user, 1)

    response = export(admin_client, [article.pk])

    expect_download(response, "export_as_csv", "text/csv; charset=utf-8", "articles.csv")


@pytest.mark.task(1, points=2)
def test_one_row_per_selected_article_with_author_and_iso_date(
    admin_client, admin_user, django_user_model
):
    expect_action_offered(admin_client, Article, "export_as_csv")
    grace = django_user_model.objects.create_user("grace")
    first = Article.objects.create(
        title="Admin actions", author=grace, status=PUBLISHED, pub_date=LAUNCH_DAY
    )
    second = Article.objects.create(title="Upcoming", author=admin_user, status=DRAFT)
    Article.objects.create(title="Not selected", author=grace)

    rows = exported_rows(admin_client, [first.pk, second.pk])

    # The changelist lists the newest first (Article.Meta.ordering), and so does the file.
    expected = [
        ["Upcoming", admin_user.username, "draft", ""],
        ["Admin actions", "grace", "published", "2024-05-01T09:30:00+00:00"],
    ]
    expect(
        rows == expected,
        f"Exporting 2 selected articles gave the rows\n  {rows}\nexpected\n  {expected}\n"
        "One row per selected article, in the changelist's order: title, the author's "
        "username, the status as stored, pub_date.isoformat() or '' when there is none.",
    )


@pytest.mark.task(1, points=1)
def test_rows_follow_the_order_the_changelist_is_sorted_by(admin_client, admin_user):
    expect_action_offered(admin_client, Article, "export_as_csv")
    articles = [
        Article.objects.create(title=title, author=admin_user) for title in ("b", "c", "a")
    ]

    # o=1 is what clicking the "Title" column header adds to the URL: sort by title.
    rows = exported_rows(admin_client, [a.pk for a in articles], query="o=1")

    titles = [row[0] for row in rows]
    expect(
        titles == ["a", "b", "c"],
        f"On a changelist sorted by title the file lists {titles}, expected ['a', 'b', 'c']. "
        "The queryset you receive is already sorted as the user sees it: keep its order.",
    )


@pytest.mark.task(1, points=2)
def test_select_all_on_a_filtered_changelist_exports_every_match(admin_client, admin_user):
    expect_action_offered(admin_client, Article, "export_as_csv")
    make_articles(admin_user, 3, title="Django tip", status=PUBLISHED, pub_date=LAUNCH_DAY)
    make_articles(admin_user, 2, title="Django tip", status=DRAFT)
    make_articles(admin_user, 2, title="Flask tip", status=PUBLISHED, pub_date=LAUNCH_DAY)
    one = Article.objects.filter(title__startswith="Django", status=PUBLISHED).first()

    rows = exported_rows(
        admin_client, [one.pk], select_across=True, query="q=Django&status__exact=published"
    )

    titles = sorted(row[0] for row in rows)
    expect(
        titles == ["Django tip 1", "Django tip 2", "Django tip 3"],
        "'Select all' on the changelist searched for Django and filtered to published "
        f"should export those 3 articles; the file has {titles}.",
    )


# Task 2: Stream it, in a constant number of queries


@pytest.mark.task(2, points=2)
def test_the_export_streams_instead_of_building_the_file_in_memory(admin_client, admin_user):
    expect_action_offered(admin_client, Article, "export_as_csv")
    articles = make_articles(admin_user, 4500)

    response = export(admin_client, [a.pk for a in articles[:1]], select_across=True)

    expect(
        response.streaming,
        f"export_as_csv returned a {type(response).__name__}, which holds the whole file in "
        "memory before sending a byte. Return a StreamingHttpResponse fed by a generator.",
    )
    chunks = [chunk for chunk in response.streaming_content if chunk]
    expect(
        len(chunks) > 1,
        "The export of 4,500 articles arrived as a single piece: the generator built the "
        "whole file before yielding it. Yield the text as you go, a batch of rows at a time.",
    )
    expect(
        len(b"".join(chunks).splitlines()) == 4501,
        "The streamed file should have the header and 4,500 rows.",
    )


@pytest.mark.task(2, points=2)
def test_the_export_runs_as_many_queries_for_500_rows_as_for_1(
    admin_client, admin_user, django_assert_num_queries
):
    expect_action_offered(admin_client, Article, "export_as_csv")
    authors = [admin_user] + [
        type(admin_user).objects.create_user(f"author{i}") for i in range(1, 5)
    ]
    articles = Article.objects.bulk_create(
        Article(title=f"Article {i}", author=authors[i % 5]) for i in range(501)
    )
    with CaptureQueriesContext(connection) as one:
        content_of(export(admin_client, [articles[0].pk]))

    with django_assert_num_queries(
        len(one),
        info="Exporting 500 articles ran more SQL queries than exporting 1: something is "
        "looked up row by row (article.author is one query per article). Ask for the "
        "values you need with values_list(..., 'author__username'), which joins the author.",
    ):
        content = content_of(export(admin_client, [a.pk for a in articles[1:]]))
    expect(len(content.splitlines()) == 501, "The file should have the header and 500 rows.")


# Task 3: Make it safe to open in a spreadsheet


@pytest.mark.task(3, points=1)
@pytest.mark.parametrize(
    "title",
    ["=HYPERLINK(\"http://evil.example\",\"click\")", "+1+1", "-2+3", "@SUM(A1)", "\tTab",
     "\rReturn"],
    ids=["equals", "plus", "minus", "at", "tab", "carriage-return"],
)
def test_a_title_a_spreadsheet_would_run_as_a_formula_is_neutralised(
    admin_client, admin_user, title
):
    expect_action_offered(admin_client, Article, "export_as_csv")
    article = Article.objects.create(title=title, author=admin_user)

    rows = exported_rows(admin_client, [article.pk])

    expect(
        rows[0][0] == "'" + title,
        f"The title {title!r} was exported as {rows[0][0]!r}. A spreadsheet runs a cell "
        "starting with =, +, -, @, a tab or a carriage return as a formula; prefix such a "
        f"cell with ' (OWASP's advice), giving {('' + chr(39) + title)!r}.",
    )


@pytest.mark.task(3, points=1)
def test_a_username_a_spreadsheet_would_run_is_neutralised(
    admin_client, django_user_model
):
    expect_action_offered(admin_client, Article, "export_as_csv")
    author = django_user_model.objects.create_user("@mallory")
    article = Article.objects.create(title="Fine", author=author)

    rows = exported_rows(admin_client, [article.pk])

    expect(
        rows[0][1] == "'@mallory",
        f"The author '@mallory' was exported as {rows[0][1]!r}: every text cell needs the "
        "same protection, usernames too.",
    )


@pytest.mark.task(3, points=1)
def test_text_that_only_contains_a_formula_sign_is_left_alone(admin_client, admin_user):
    expect_action_offered(admin_client, Article, "export_as_csv")
    article = Article.objects.create(title="E = mc² - a primer", author=admin_user)

    rows = exported_rows(admin_client, [article.pk])

    expect(
        rows[0][0] == "E = mc² - a primer",
        f"'E = mc² - a primer' was exported as {rows[0][0]!r}: only a cell that starts with "
        "a formula sign needs the prefix.",
    )


@pytest.mark.task(3, points=2)
def test_commas_quotes_newlines_and_non_ascii_text_survive(admin_client, admin_user):
    expect_action_offered(admin_client, Article, "export_as_csv")
    titles = ['Commas, "quotes"', "Two\nlines", "Grüße, 日本語 and emoji 🎉"]
    articles = [Article.objects.create(title=t, author=admin_user) for t in titles]

    rows = exported_rows(admin_client, [a.pk for a in articles])

    exported = sorted(row[0] for row in rows)
    expect(
        exported == sorted(titles),
        f"Read back with Python's csv module, the titles are {exported}; expected "
        f"{sorted(titles)}. Let csv.writer quote the cells, and encode the text as UTF-8.",
    )
