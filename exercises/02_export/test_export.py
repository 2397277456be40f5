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
    action_queries,
    content_of,
    csv_rows,
    expect,
    expect_action_offered,
    expect_num_queries,
    expect_download,
    peak_memory_while_reading,
    post_action,
    refuses_nul,
)

Article = apps.get_model("export", "Article")

DRAFT, PUBLISHED = Article.Status.DRAFT, Article.Status.PUBLISHED
HEADER = ["Title", "Author", "Status", "Published"]
LAUNCH_DAY = datetime(2024, 5, 1, 9, 30, tzinfo=UTC)
BATCH_SIZE = 2000  # the stub's: rows per chunk read and per piece of CSV sent

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


def streamed_peak_memory(client, selected, **options):
    """Peak memory and lines of the export, read to the end."""
    return peak_memory_while_reading(lambda: export(client, selected, **options))


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
        "The contract (lesson 02, Task 1): one row per selected article, in the "
        "changelist's order: title, the author's username, the status as stored, pub_date "
        "in ISO 8601 or an empty cell when there is none.",
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


@pytest.mark.task(1, points=1)
def test_rows_deleted_since_the_page_was_shown_give_a_file_with_only_the_header(
    admin_client, admin_user
):
    expect_action_offered(admin_client, Article, "export_as_csv")
    (gone,) = make_articles(admin_user, 1)
    gone_pk = gone.pk
    gone.delete()  # someone else deleted it while the changelist was open

    rows = exported_rows(admin_client, [gone_pk])

    expect(
        rows == [],
        f"The selected article no longer exists, yet the file has the rows {rows}. The "
        "truthful answer is a file with the header and no rows: write the header even when "
        "the queryset is empty.",
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
        "memory before sending a byte. The contract is a stream (lesson 02, Task 2): which "
        "response does the desk's export_members return, and what feeds it?",
    )
    chunks = [chunk for chunk in response.streaming_content if chunk]
    expect(
        len(chunks) > 1,
        "The export of 4,500 articles arrived as a single piece: the generator built the "
        "whole file before yielding it. Yield the text as you go, a batch of rows at a time.",
    )
    expect(
        len(chunks) <= 4,
        f"The export of 4,500 articles arrived in {len(chunks):,} pieces. Each piece makes "
        "its own trip through the response and the server: the contract is one piece per "
        "batch of BATCH_SIZE rows, at most 4 here with the header (lesson 02, Task 2). How "
        "does the desk's JSON Lines export gather its lines before yielding them?",
    )
    expect(
        len(b"".join(chunks).splitlines()) == 4501,
        "The streamed file should have the header and 4,500 rows.",
    )


@pytest.mark.task(2, points=2)
def test_the_export_runs_as_many_queries_for_500_rows_as_for_1(
    admin_client, admin_user
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

    with expect_num_queries(
        len(one),
        info="Exporting 500 articles ran more SQL queries than exporting 1: something is "
        "looked up row by row (article.author is one query per article). The author's "
        "username has to come in the query that reads the articles: how do the desk's "
        "reminders get each member's name in the query that reads the loans (lesson 02, "
        "'The worked example: exporting members')?",
    ):
        content = content_of(export(admin_client, [a.pk for a in articles[1:]]))
    expect(len(content.splitlines()) == 501, "The file should have the header and 500 rows.")


@pytest.mark.task(2, points=2)
def test_every_row_past_the_first_batch_arrives_once_in_the_changelists_order(
    admin_client, admin_user
):
    expect_action_offered(admin_client, Article, "export_as_csv")
    count = 2 * BATCH_SIZE + 500  # two full batches and part of a third
    # Ids ascend while the titles descend, so the id order is not the title order.
    articles = Article.objects.bulk_create(
        Article(title=f"Article {n:05d}", author=admin_user) for n in range(count, 0, -1)
    )
    with CaptureQueriesContext(connection) as one:
        content_of(export(admin_client, [articles[0].pk]))

    # o=1 is the changelist sorted by title, as clicking the "Title" header does.
    with expect_num_queries(
        len(one),
        info=f"Exporting {count:,} articles ran more queries than exporting 1: something "
        "runs a query per batch or per row. The contract is one query that the rows are read "
        "from in chunks (lesson 02, Task 2): how does the desk's export_members read its "
        "rows?",
    ):
        response = export(admin_client, [articles[0].pk], select_across=True, query="o=1")
        lines = content_of(response).decode("utf-8").splitlines()

    expect(
        lines.count(",".join(HEADER)) == 1 and lines[:1] == [",".join(HEADER)],
        f"The file of {count:,} articles has the header row "
        f"{lines.count(','.join(HEADER))} times; it belongs once, at the top. Write it before "
        "the first batch, not once per batch.",
    )
    titles = [line.split(",")[0] for line in lines[1:]]
    expected = [f"Article {n:05d}" for n in range(1, count + 1)]
    missing = sorted(set(expected) - set(titles))
    expect(
        len(titles) == count and not missing,
        f"Select all on {count:,} articles ({BATCH_SIZE:,} a batch) gave {len(titles):,} rows; "
        f"{len(missing):,} articles are missing, for example {missing[:3]}. Every batch goes "
        "into the file, the last, shorter one too, and none twice.",
    )
    expect(
        titles == expected,
        f"All {count:,} rows arrived, but not in the order of the changelist sorted by title "
        f"(the first ones are {titles[:3]}). Keep the queryset's order in every batch: no "
        "order_by() of your own.",
    )


@pytest.mark.task(2, points=2)
def test_memory_stays_flat_when_the_selection_grows_fourfold(admin_client, admin_user):
    expect_action_offered(admin_client, Article, "export_as_csv")
    small, large = 2 * BATCH_SIZE, 8 * BATCH_SIZE  # both past the first batch
    title = "A title long enough to make a big file " * 3  # about 120 characters
    make_articles(admin_user, small, title=title, status=PUBLISHED, pub_date=LAUNCH_DAY)
    make_articles(admin_user, large - small, title=title, status=DRAFT)
    one = [Article.objects.first().pk]
    streamed_peak_memory(admin_client, one)  # once first: imports and caches fill up

    peak_small, lines_small = streamed_peak_memory(
        admin_client, one, select_across=True, query="status__exact=published"
    )
    peak_large, lines_large = streamed_peak_memory(admin_client, one, select_across=True)

    expect(
        (lines_small, lines_large) == (small + 1, large + 1),
        f"Exporting {small:,} and then {large:,} articles gave files of {lines_small:,} and "
        f"{lines_large:,} lines; expected the header and one line per article.",
    )
    growth = peak_large - peak_small
    expect(
        growth < 500_000,
        f"Exporting {small:,} articles held at most {peak_small / 1e6:.1f} MB of Python "
        f"objects at once; exporting {large:,} held {peak_large / 1e6:.1f} MB, "
        f"{growth / 1e6:.1f} MB more (measured with tracemalloc). Something keeps every row: "
        "a queryset read whole, an HttpResponse, or a list holding the whole file. The "
        "contract is one batch in memory at a time (lesson 02, Task 2): what does a loop "
        "over a queryset keep, and how does the desk's export_members avoid it?",
    )


@pytest.mark.task(2, points=1)
def test_the_export_queries_the_articles_once(admin_client, admin_user):
    expect_action_offered(admin_client, Article, "export_as_csv")
    articles = make_articles(admin_user, 3)
    (gone,) = make_articles(admin_user, 1, title="Gone")
    gone_pk = gone.pk
    gone.delete()

    for what, selected in (("3 articles", [a.pk for a in articles]), ("a deleted one", [gone_pk])):
        _, sqls = action_queries(admin_client, Article, "export_as_csv", selected)
        listing = "\n".join(f"  {sql[:100]}" for sql in sqls) or "  (none)"
        expect(
            len(sqls) == 1 and sqls[0].startswith("SELECT") and "COUNT(" not in sqls[0],
            f"Exporting {what}, the action ran on the article table, response read to the "
            f"end:\n{listing}\nThe contract is one SELECT that reads the rows, author "
            "included, and no other query on that table, whatever the selection, an empty "
            "one too (lesson 02, Task 2). Does your export ask the database something "
            "before it reads the rows?",
        )


# Task 3: Make it safe to open in a spreadsheet


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


@pytest.mark.task(3, points=1)
@pytest.mark.parametrize("start", UNSAFE_STARTS.values(), ids=UNSAFE_STARTS.keys())
def test_text_a_spreadsheet_could_run_is_neutralised_in_every_text_column(
    admin_client, django_user_model, start
):
    expect_action_offered(admin_client, Article, "export_as_csv")
    if start == "\0" and refuses_nul(django_user_model, username="\x00mallory"):
        return  # PostgreSQL stores no NUL, so no cell it exports can start with one
    # The same start first, and behind spaces (a spreadsheet may trim them), in both text
    # columns: the title someone typed, and the username someone chose.
    cells = {
        "title": f'{start}HYPERLINK("http://evil.example","click")',
        "title after spaces": f"  {start}1+1",
        "username": f"{start}mallory",
    }
    author = django_user_model.objects.create_user(cells["username"])
    first = Article.objects.create(title=cells["title"], author=author)
    second = Article.objects.create(title=cells["title after spaces"], author=author)

    rows = exported_rows(admin_client, [first.pk, second.pk])

    exported = {"title": rows[1][0], "title after spaces": rows[0][0], "username": rows[0][1]}
    wrong = {
        column: value for column, value in exported.items() if value != "'" + cells[column]
    }
    expect(
        not wrong,
        f"Exported 2 articles whose text cells start with {start!r}, first or behind spaces. "
        "These cells left the file as a spreadsheet may run them:\n"
        + "".join(f"  {col}: {cells[col]!r} became {val!r}\n" for col, val in wrong.items())
        + "A text cell whose first character other than a space is =, +, -, @, a tab, a "
        "carriage return, a line feed or NUL gets a ' in front, the whole text kept after "
        """it: '  =1+1' becomes "'  =1+1". Check every text column, titles and usernames.""",
    )


@pytest.mark.task(3, points=1)
def test_text_that_only_contains_a_formula_sign_later_is_left_alone(
    admin_client, admin_user
):
    expect_action_offered(admin_client, Article, "export_as_csv")
    titles = [
        "E = mc² - a primer",
        "Q&A: 1+1, @home",
        "  Indented, with a tab\tinside",
        "Ends with a newline\n",
        "Total:\t=SUM(A1)",
    ]
    articles = [Article.objects.create(title=t, author=admin_user) for t in titles]

    rows = exported_rows(admin_client, [a.pk for a in articles])

    exported = sorted(row[0] for row in rows)
    expect(
        exported == sorted(titles),
        f"Titles that only contain =, +, -, @, a tab or a newline further on were exported "
        f"as {exported}; expected them unchanged, {sorted(titles)}. Only a cell that starts "
        "with one (after any spaces) needs the ', and leading spaces alone do not.",
    )


@pytest.mark.task(3, points=2)
def test_commas_quotes_newlines_and_non_ascii_text_survive(admin_client, admin_user):
    expect_action_offered(admin_client, Article, "export_as_csv")
    # A separator or a quote could start a new cell in a spreadsheet: csv.writer's quoting
    # keeps "a,=1+1" one cell, so its = never begins one.
    titles = ['Commas, "quotes"', "a,=1+1", 'b";=1+1', "Two\nlines", "Grüße, 日本語 and emoji 🎉"]
    articles = [Article.objects.create(title=t, author=admin_user) for t in titles]

    rows = exported_rows(admin_client, [a.pk for a in articles])

    exported = sorted(row[0] for row in rows)
    expect(
        exported == sorted(titles),
        f"Read back with Python's csv module, the titles are {exported}; expected "
        f"{sorted(titles)}. Let csv.writer quote the cells (a comma or a quote inside a "
        "cell must not start a new one), and encode the text as UTF-8.",
    )
