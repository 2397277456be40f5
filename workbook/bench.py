"""Benchmark the reference actions through the admin, the way a user runs them.

    python -m workbook bench [--rows 10000 100000] [--runs 3] [--database-url URL]
                             [--markdown FILE] [--update-docs]

For each N it builds a SQLite file with N rows in every exercise's table (with
--database-url, a database on that PostgreSQL server). Each measurement then runs in a fresh
process on its own copy of it (on PostgreSQL, CREATE DATABASE ... TEMPLATE): log in, warm up
(load the changelist, export one row), then POST the changelist with "select all" and read
the whole response. It reports rows per second, SQL queries (counted with
connection.execute_wrapper, which has no cap, unlike CaptureQueriesContext's 9,000), the
growth of peak memory (RSS) during the request, and the bytes sent. Exercise 07's refund of
every order is measured twice: done in the request, and queued then done by one pass of the
task worker. Each figure is the median of --runs processes.
"""

import argparse
import contextlib
import csv
import json
import os
import platform
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import databases

EXPORTS = {
    "reference": "`export_as_csv` from solutions/02_export: values_list, iterator, streaming",
    "seed": "the seed lesson's version: HttpResponse, a loop, `article.author` per row",
    "import-export": (
        "django-import-export 4.4.3's admin export action, a ModelResource with the same four "
        "columns. Default configuration, plus IMPORT_EXPORT_SKIP_ADMIN_ACTION_EXPORT_UI = True: "
        "its intermediate form holds one hidden input per row, which exceeds Django's "
        "DATA_UPLOAD_MAX_NUMBER_FIELDS past ~1,000 rows and takes quadratic time to validate"
    ),
    "raw": "Python's sqlite3 and csv modules over the same join, no Django: the ceiling",
}
# On PostgreSQL the ceiling is psycopg's, and the server's own CSV beside it.
POSTGRESQL_EXPORTS = {
    **EXPORTS,
    "raw": "psycopg 3 and Python's csv module over the same join, no Django (one query, every "
           "row fetched at once): the ceiling of a Python export",
    "copy": "`COPY (the same join) TO STDOUT (FORMAT csv, HEADER)` read by psycopg: the "
            "server writes the CSV itself. Not a safe export (no formula neutralised, "
            "PostgreSQL's own timestamp format): the ceiling of the server",
}
# name: (app label of its Article, changelist, whether it asks for confirmation first)
ACTIONS = {
    "make_published": ("basic_action", "/admin/basic_action/article/", False),
    "make_draft": ("basic_action", "/admin/basic_action/article/", False),
    "delete_with_confirmation": ("confirmation", "/admin/confirmation/article/", True),
    "notify_authors": ("conditional", "/admin/conditional/article/", False),
    "export_selected": ("global", "/global/admin/global/article/", False),
    "publish": ("change_form", "/admin/change_form/article/", False),
}
# Exercise 07's refund of every order ("select all", a reason, Refund them), done in the
# request or queued and done by one pass of the worker.
REFUNDS = {
    "mark_refunded": "`mark_refunded` from solutions/07_refund_desk, done in the request "
                     "(REFUND_DESK_INLINE_LIMIT raised to N for the measure): the refund "
                     "page, then its form",
    "mark_refunded_queued": "the same refund queued (a limit of 0), then one pass of "
                            "the worker (`db_worker --batch`) in the same process; in "
                            "brackets, the two requests alone",
}
REFUND_URL = "/admin/refund_desk/order/"
EXPORT = ("export", "/admin/export/article/", False)
RAW_SQL = (
    'SELECT a.title, u.username, a.status, a.pub_date FROM "export_article" a '
    'JOIN "auth_user" u ON u.id = a.author_id ORDER BY a.id DESC'
)
COPY_SQL = f"COPY ({RAW_SQL}) TO STDOUT (FORMAT csv, HEADER)"


def seed_export_as_csv(modeladmin, request, queryset):
    """The seed lesson's export, kept as written there, to measure what it costs."""
    from django.http import HttpResponse

    response = HttpResponse(content_type="text/csv")
    response["Content-Disposition"] = 'attachment; filename="articles.csv"'
    writer = csv.writer(response)
    writer.writerow(["Title", "Author", "Status", "Published"])
    for article in queryset:
        writer.writerow(
            [article.title, article.author.username, article.status, article.pub_date]
        )
    return response


def exports():
    """The exports measured on this run's database."""
    return POSTGRESQL_EXPORTS if databases.is_postgresql() else EXPORTS


def _use(database):
    """Point this process at DATABASE: a SQLite file's path, or a PostgreSQL URL."""
    if "://" in str(database):
        os.environ[databases.VARIABLE] = str(database)
    else:
        os.environ.pop(databases.VARIABLE, None)
        os.environ["WORKBOOK_DB"] = str(database)


def _setup_django(database):
    _use(database)
    os.environ["WORKBOOK_SOLUTIONS"] = "1"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "workbook.settings")
    from django.conf import settings

    settings.INSTALLED_APPS = [*settings.INSTALLED_APPS, "import_export"]
    settings.IMPORT_EXPORT_SKIP_ADMIN_ACTION_EXPORT_UI = True
    # A mail server far away: each message counted, none kept (locmem's outbox would be
    # measured as the action's memory).
    settings.MAILERS = {"default": {"BACKEND": "workbook.testing.CountingEmailBackend"}}
    settings.DEBUG = False  # DEBUG keeps every query in memory
    import django

    django.setup()


def make_database(path, rows):
    """A SQLite file with `rows` articles in every exercise, by rows/50 authors."""
    _setup_django(path)
    from django.apps import apps
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.utils import timezone

    call_command("migrate", verbosity=0)
    User = get_user_model()
    User.objects.create_superuser("bench", password="bench")
    authors = User.objects.bulk_create(
        User(username=f"author{i}", email=f"author{i}@example.com")
        for i in range(max(1, rows // 50))
    )
    now = timezone.now()
    Category = apps.get_model("global", "Category")
    categories = Category.objects.bulk_create(Category(name=f"Topic {i}") for i in range(10))
    for label in ("export", "basic_action", "confirmation", "conditional", "global",
                  "change_form"):
        Article = apps.get_model(label, "Article")
        for start in range(0, rows, 10_000):
            Article.objects.bulk_create(
                Article(
                    title=f"Article number {i}, on admin actions",
                    author=authors[i % len(authors)],
                    status="published" if i % 3 else "draft",
                    pub_date=now if i % 3 else None,
                    **({"category": categories[i % 10]} if label == "global" else {}),
                )
                for i in range(start, min(rows, start + 10_000))
            )
    # 07: one customer per 50 orders; 80 % of the orders paid, the rest shipped or refunded.
    Customer = apps.get_model("refund_desk", "Customer")
    Order = apps.get_model("refund_desk", "Order")
    customers = Customer.objects.bulk_create(
        Customer(name=f"Customer {i}", email=f"customer{i}@example.com")
        for i in range(max(1, rows // 50))
    )
    for start in range(0, rows, 10_000):
        Order.objects.bulk_create(
            Order(number=f"B-{i:07}", customer=customers[i % len(customers)], total="42.00",
                  status={0: "shipped", 1: "refunded"}.get(i % 10, "paid"))
            for i in range(start, min(rows, start + 10_000))
        )
    Comment = apps.get_model("confirmation", "Comment")
    articles = apps.get_model("confirmation", "Article").objects.values_list("pk", flat=True)
    for start in range(0, rows, 20_000):
        Comment.objects.bulk_create(
            Comment(article_id=pk, name="Reader", body="Nice.")
            for pk in articles[start:start + 20_000:2]
        )


def _register_import_export(admin_site, Article):
    from import_export import fields, resources
    from import_export.admin import ExportActionModelAdmin

    class ArticleResource(resources.ModelResource):
        author = fields.Field(attribute="author__username", column_name="Author")

        class Meta:
            model = Article
            fields = ("title", "author", "status", "pub_date")

    class ArticleExportAdmin(ExportActionModelAdmin):
        resource_classes = [ArticleResource]
        list_display = ["title", "status", "pub_date"]

    admin_site.unregister(Article)
    admin_site.register(Article, ArticleExportAdmin)
    return "export_admin_action"


class _Sink:
    """A file that only counts the bytes written to it."""

    def __init__(self):
        self.size = 0

    def write(self, text):
        self.size += len(text.encode() if isinstance(text, str) else text)


def _connect(database):
    if "://" not in str(database):
        return contextlib.closing(sqlite3.connect(database))
    return databases.connect(database)


def measure_raw(database, copy=False):
    """The same join and CSV without Django: Python's csv module over the driver's rows, or
    (COPY, PostgreSQL only) the server's own CSV."""
    sink = _Sink()
    with _connect(database) as connection:
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        start = time.perf_counter()
        if copy:
            with connection.cursor().copy(COPY_SQL) as stream:
                for block in stream:
                    sink.write(block)
        else:
            writer = csv.writer(sink)
            writer.writerow(["Title", "Author", "Status", "Published"])
            writer.writerows(connection.execute(RAW_SQL))
        seconds = time.perf_counter() - start
        rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        count = connection.execute('SELECT COUNT(*) FROM "export_article"').fetchone()[0]
    return {"seconds": seconds, "queries": 1, "peak_mb": (rss_after - rss_before) / 1024,
            "bytes": sink.size, "rows": count}


def measure_refund(database, queued):
    """07's refund of every order through the admin, as a clerk does it: "select all", the
    refund page, its form with a reason; QUEUED, then one pass of the worker."""
    _setup_django(database)
    from django.apps import apps
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client

    from workbook.testing import form_with_button, post_data

    Order = apps.get_model("refund_desk", "Order")
    rows = Order.objects.count()
    paid = Order.objects.filter(status="paid").count()
    # Every order in the request, or (a limit of 0) every order queued, whatever N.
    settings.REFUND_DESK_INLINE_LIMIT = 0 if queued else rows
    client = Client()
    client.force_login(get_user_model().objects.get(username="bench"))
    first = Order.objects.values_list("pk", flat=True).first()
    client.get(REFUND_URL)  # warm-up: imports, templates, the connection
    queries = 0

    def count(execute, sql, params, many, context):
        nonlocal queries
        queries += 1
        return execute(sql, params, many, context)

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with connection.execute_wrapper(count):
        start = time.perf_counter()
        page = client.post(REFUND_URL, {"action": "mark_refunded", "index": 0,
                                        "_selected_action": [first], "select_across": "1"})
        form = form_with_button(page, "apply")
        client.post(REFUND_URL, {**post_data(form["fields"]), "reason": "damaged",
                                 "note": "Measured.", "apply": "yes"})
        request_seconds = time.perf_counter() - start
        if queued:
            call_command("db_worker", "--batch", "--no-startup-delay", "--no-reload",
                         verbosity=0)
        seconds = time.perf_counter() - start
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    from django_tasks_db.models import DBTaskResult

    refunded = Order.objects.filter(status="refunded", refund_note="Measured.").count()
    tasks = DBTaskResult.objects.filter(status="SUCCESSFUL").count()
    if (refunded, tasks) != (paid, int(queued)):  # a measure of work not done is no measure
        raise SystemExit(f"{refunded} of the {paid} paid orders were refunded, by {tasks} "
                         "tasks")
    return {"seconds": seconds, "queries": queries, "request_seconds": request_seconds,
            "rows": rows, "peak_mb": (rss_after - rss_before) / 1024}


def measure(database, name):
    """One measurement in this process: warm up, then run `name` on every row once."""
    if name in ("raw", "copy"):
        return measure_raw(database, copy=name == "copy")
    if name in REFUNDS:
        return measure_refund(database, queued=name == "mark_refunded_queued")
    _setup_django(database)
    from django.apps import apps
    from django.contrib import admin
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client

    label, url, confirms = ACTIONS.get(name, EXPORT)
    action = name if name in ACTIONS else "export_as_csv"
    Article = apps.get_model("export", "Article")
    if name == "seed":
        admin.site.get_model_admin(Article).actions = [seed_export_as_csv]
        action = "seed_export_as_csv"
    elif name == "import-export":
        import warnings

        from django.utils.deprecation import RemovedInDjango2028Warning

        # 4.4.3 still overrides get_actions() without Django 6.1's action_location.
        warnings.filterwarnings(
            "ignore", category=RemovedInDjango2028Warning, module=r"import_export\."
        )
        action = _register_import_export(admin.site, Article)
    client = Client()
    client.force_login(get_user_model().objects.get(username="bench"))
    selection = apps.get_model(label, "Article").objects
    first = selection.values_list("pk", flat=True).first()
    rows = selection.count()

    def body(response):
        if response.streaming:
            return sum(len(chunk) for chunk in response.streaming_content)
        return len(response.content)

    def run(select_across):
        data = {"action": action, "index": 0, "_selected_action": [first],
                "select_across": "1" if select_across else "0"}
        page = client.post(url, data)
        size = body(page)
        if confirms:
            # Press "Yes" on the page: its form carries the digest of the rows it listed.
            from workbook.testing import form_with_button

            confirm = {}
            for field, value in form_with_button(page, "apply")["fields"]:
                confirm.setdefault(field, []).append(value)
            size += body(client.post(url, {**confirm, "apply": "yes"}))
        return size

    client.get(url)  # warm-up: imports, templates, the connection
    if name in exports():
        run(select_across=False)
    queries = 0

    def count(execute, sql, params, many, context):
        nonlocal queries
        queries += 1
        return execute(sql, params, many, context)

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with connection.execute_wrapper(count):
        start = time.perf_counter()
        size = run(select_across=True)
        seconds = time.perf_counter() - start
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"seconds": seconds, "queries": queries, "peak_mb": (rss_after - rss_before) / 1024,
            "bytes": size, "rows": rows}


def run(rows_list, runs, names):
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for rows in rows_list:
            with _database(tmp, f"bench_{rows}") as database:
                subprocess.run(
                    [sys.executable, "-m", "workbook.bench", "--make", database, str(rows)],
                    check=True,
                )
                for name in names:
                    samples = []
                    for _ in range(runs):
                        # A copy per run: some actions change or delete the rows they measure.
                        with _database(tmp, "bench_run", template=database) as copy:
                            done = subprocess.run(
                                [sys.executable, "-m", "workbook.bench", "--measure", copy,
                                 name], check=True, capture_output=True, text=True,
                            )
                        samples.append(json.loads(done.stdout.strip().splitlines()[-1]))
                    median = {k: statistics.median(s[k] for s in samples) for k in samples[0]}
                    results.append({"name": name, "n": rows, **median})
                    print(_row(results[-1]), flush=True)
    return results


@contextlib.contextmanager
def _database(folder, name, template=None):
    """A new database for the block: a SQLite file in FOLDER (a copy of the file TEMPLATE),
    or one on $DATABASE_URL's PostgreSQL server (a copy of the database TEMPLATE), dropped
    afterwards. Yields its path or URL."""
    url = os.environ.get(databases.VARIABLE)
    if databases.is_postgresql(url):
        source = template and databases.parse(template)["NAME"]
        name = f"workbook_{name}_{os.getpid()}"
        with databases.scratch(url, name, template=source) as created:
            yield created
        return
    path = Path(folder) / f"{name}.sqlite3"
    if template:
        shutil.copyfile(template, path)
    yield str(path)
    path.unlink(missing_ok=True)


def _row(r):
    if r["name"] in POSTGRESQL_EXPORTS:
        return (f"| {r['name']} | {r['n']:,} | {r['rows'] / r['seconds']:,.0f} | "
                f"{r['queries']:,.0f} | {r['peak_mb']:.1f} MB | {r['bytes'] / 1e6:.1f} MB |")
    request = f" ({r['request_seconds']:.2f} s)" if r["name"] == "mark_refunded_queued" else ""
    return (f"| {r['name']} | {r['n']:,} | {r['seconds']:.2f} s{request} | "
            f"{r['queries']:,.0f} | {r['peak_mb']:.1f} MB |")


def targets(results):
    """The issue's targets, checked on the largest N of this run: (met?, sentence) pairs."""
    by = {(r["name"], r["n"]): r for r in results}
    largest, smallest = max(r["n"] for r in results), min(r["n"] for r in results)

    def speed(name, n=largest):
        r = by.get((name, n))
        return r["rows"] / r["seconds"] if r else None

    checks = []
    reference = speed("reference")
    for other, factor in (("import-export", 25), ("seed", 25)):
        if reference and speed(other):
            ratio = reference / speed(other)
            checks.append((ratio >= factor, f"export ≥ {factor}× {other} at {largest:,} rows: "
                                            f"{ratio:,.1f}×"))
    if reference and speed("raw"):
        share = 100 * reference / speed("raw")
        checks.append((share >= 35, f"export ≥ 35 % of the raw limit: {share:.0f} %"))
    if largest != smallest and ("reference", smallest) in by:
        growth = by[("reference", largest)]["peak_mb"] - by[("reference", smallest)]["peak_mb"]
        checks.append((growth <= 5, f"export's peak memory at {largest:,} within 5 MB of "
                                    f"{smallest:,}: {growth:+.1f} MB"))
        for name in ["reference", *ACTIONS]:
            counts = sorted({r["queries"] for r in results if r["name"] == name})
            if counts:
                checks.append((len(counts) == 1, f"{name}: the same queries at every N: "
                                                 f"{', '.join(f'{c:,.0f}' for c in counts)}"))
    if largest != smallest:
        for name in REFUNDS:
            if (name, smallest) not in by or (name, largest) not in by:
                continue
            small, large = by[(name, smallest)], by[(name, largest)]
            # 3 queries a batch of 2,000 keys (lock, UPDATE, history) and 1 a batch of 500
            # emails: what may grow with the selection, and nothing else.
            allowed = 3 * batches_between(large["rows"], small["rows"], 2000) \
                + batches_between(large["rows"], small["rows"], 500)
            extra = large["queries"] - small["queries"]
            checks.append((extra <= allowed, f"{name}: queries grow by batches only, at most "
                                             f"{allowed:,} from {smallest:,} to {largest:,}: "
                                             f"{extra:+,.0f}"))
            growth = large["peak_mb"] - small["peak_mb"]
            checks.append((growth <= 5, f"{name}: peak memory at {largest:,} within 5 MB of "
                                        f"{smallest:,}: {growth:+.1f} MB"))
    return checks


def batches_between(large, small, size):
    """How many more batches of SIZE keys LARGE keys take than SMALL ones."""
    return -(-large // size) - -(-small // size)


def environment():
    import django

    if databases.is_postgresql():
        import psycopg

        with databases.connect(os.environ[databases.VARIABLE]) as connection:
            server = connection.execute("SHOW server_version").fetchone()[0].split()[0]
        database = f"PostgreSQL {server} on this machine, psycopg {psycopg.__version__}"
    else:
        database = f"SQLite {sqlite3.sqlite_version}"
    return (f"{platform.python_implementation()} {platform.python_version()}, Django "
            f"{django.get_version()}, {database}, {platform.machine()}, "
            f"{os.cpu_count()} cores")


def markdown(results, runs):
    exported = [r for r in results if r["name"] in POSTGRESQL_EXPORTS]
    actions = [r for r in results if r["name"] in ACTIONS or r["name"] in REFUNDS]
    lines = ["| export | rows | rows/s | SQL queries | peak RSS growth | output |",
             "|---|---:|---:|---:|---:|---:|", *map(_row, exported)]
    if actions:
        lines += ["", "| reference action, on every row | rows | wall time | SQL queries | "
                      "peak RSS growth |",
                  "|---|---:|---:|---:|---:|", *map(_row, actions)]
    lines += ["", f"Median of {runs} fresh processes each; {environment()}."]
    lines += [f"- **{name}**: {text}" for name, text in {**exports(), **REFUNDS}.items()
              if any(r["name"] == name for r in results)]
    checks = targets(results)
    if checks:
        lines += ["", "Targets:"] + [f"- {'met' if ok else 'MISSED'}: {text}"
                                     for ok, text in checks]
    return "\n".join(lines) + "\n"


DOCS = ["README.md", "lessons/02_export.md"]


def markers():
    """The lines around this database's tables in DOCS."""
    kind = "bench-postgresql" if databases.is_postgresql() else "bench"
    return f"<!-- {kind} -->\n", f"<!-- /{kind} -->\n"


def update_docs(table):
    """Put `table` between this database's bench markers of the README and the export
    lesson."""
    from .metadata import ROOT

    start, end = markers()
    for name in DOCS:
        path = ROOT / name
        text = path.read_text()
        if start in text and end in text:
            head, rest = text.split(start, 1)
            path.write_text(head + start + table + end + rest.split(end, 1)[1])
            print(f"Updated {name}")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--loop" in argv:  # the learner's loop: cold test runs and watch (workbook/loopbench.py)
        from . import loopbench

        return loopbench.main([a for a in argv if a != "--loop"])
    parser = argparse.ArgumentParser(prog="workbook bench", description=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", choices=[*POSTGRESQL_EXPORTS, *ACTIONS, *REFUNDS],
                        action="append",
                        help="measure only these (repeatable); all by default (copy: "
                             "PostgreSQL only)")
    parser.add_argument("--database-url", metavar="URL",
                        help="measure on this PostgreSQL server (each N gets databases of "
                             "its own there; the role needs CREATEDB); default: SQLite files")
    parser.add_argument("--markdown", metavar="FILE", help="also write the tables to FILE")
    parser.add_argument("--update-docs", action="store_true",
                        help=f"write the tables into {' and '.join(DOCS)}")
    parser.add_argument("--make", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--measure", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.make:
        return make_database(args.make[0], int(args.make[1]))
    if args.measure:
        print(json.dumps(measure(*args.measure)))
        return 0
    if args.database_url:
        try:
            databases.use(args.database_url)
            databases.check(args.database_url, needs_createdb=True)
        except databases.DatabaseUrlError as error:
            parser.exit(2, f"workbook bench: {error}\n")
    names = args.only or [*exports(), *ACTIONS, *REFUNDS]
    if "copy" in names and not databases.is_postgresql():
        parser.exit(2, "workbook bench: copy measures PostgreSQL's COPY: add --database-url\n")
    print("| measured | rows | rows/s or time | SQL queries | ...")
    results = run(args.rows, args.runs, names)
    table = markdown(results, args.runs)
    print("\n" + table)
    if args.markdown:
        Path(args.markdown).write_text(table)
        print(f"Wrote {args.markdown}")
    if args.update_docs:
        update_docs(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
