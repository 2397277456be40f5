"""Benchmark the reference actions through the admin, the way a user runs them.

    python -m workbook bench [--rows 10000 100000] [--runs 3] [--markdown FILE] [--update-docs]

For each N it builds a SQLite file with N rows in every exercise's table. Each measurement
then runs in a fresh process on its own copy of that file: log in, warm up (load the
changelist, export one row), then POST the changelist with "select all" and read the whole
response. It reports rows per second, SQL queries (counted with connection.execute_wrapper,
which has no cap, unlike CaptureQueriesContext's 9,000), the growth of peak memory (RSS)
during the request, and the bytes sent. Each figure is the median of --runs processes.
"""

import argparse
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
# name: (app label of its Article, changelist, whether it asks for confirmation first)
ACTIONS = {
    "make_published": ("basic_action", "/admin/basic_action/article/", False),
    "make_draft": ("basic_action", "/admin/basic_action/article/", False),
    "delete_with_confirmation": ("confirmation", "/admin/confirmation/article/", True),
    "notify_authors": ("conditional", "/admin/conditional/article/", False),
    "export_selected": ("global", "/global/admin/global/article/", False),
    "publish": ("change_form", "/admin/change_form/article/", False),
}
EXPORT = ("export", "/admin/export/article/", False)
RAW_SQL = (
    'SELECT a.title, u.username, a.status, a.pub_date FROM "export_article" a '
    'JOIN "auth_user" u ON u.id = a.author_id ORDER BY a.id DESC'
)


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


def _setup_django(database):
    os.environ["WORKBOOK_DB"] = str(database)
    os.environ["WORKBOOK_SOLUTIONS"] = "1"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "workbook.settings")
    from django.conf import settings

    settings.INSTALLED_APPS = [*settings.INSTALLED_APPS, "import_export"]
    settings.IMPORT_EXPORT_SKIP_ADMIN_ACTION_EXPORT_UI = True
    settings.MAILERS = {"default": {"BACKEND": "django.core.mail.backends.locmem.EmailBackend"}}
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


def measure_raw(database):
    """The same join and CSV with nothing but the standard library."""
    class Sink:
        size = 0

        def write(self, text):
            Sink.size += len(text.encode())

    connection = sqlite3.connect(database)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    writer = csv.writer(Sink())
    writer.writerow(["Title", "Author", "Status", "Published"])
    writer.writerows(connection.execute(RAW_SQL))
    seconds = time.perf_counter() - start
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    count = connection.execute('SELECT COUNT(*) FROM "export_article"').fetchone()[0]
    return {"seconds": seconds, "queries": 1, "peak_mb": (rss_after - rss_before) / 1024,
            "bytes": Sink.size, "rows": count}


def measure(database, name):
    """One measurement in this process: warm up, then run `name` on every row once."""
    if name == "raw":
        return measure_raw(database)
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
    if name in EXPORTS:
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
            database = Path(tmp) / f"bench-{rows}.sqlite3"
            subprocess.run(
                [sys.executable, "-m", "workbook.bench", "--make", str(database), str(rows)],
                check=True,
            )
            for name in names:
                samples = []
                for _ in range(runs):
                    # A copy per run: some actions change or delete the rows they measure.
                    copy = Path(tmp) / "run.sqlite3"
                    shutil.copyfile(database, copy)
                    done = subprocess.run(
                        [sys.executable, "-m", "workbook.bench", "--measure", str(copy), name],
                        check=True, capture_output=True, text=True,
                    )
                    samples.append(json.loads(done.stdout.strip().splitlines()[-1]))
                median = {k: statistics.median(s[k] for s in samples) for k in samples[0]}
                results.append({"name": name, "n": rows, **median})
                print(_row(results[-1]), flush=True)
    return results


def _row(r):
    if r["name"] in EXPORTS:
        return (f"| {r['name']} | {r['n']:,} | {r['rows'] / r['seconds']:,.0f} | "
                f"{r['queries']:,.0f} | {r['peak_mb']:.1f} MB | {r['bytes'] / 1e6:.1f} MB |")
    return f"| {r['name']} | {r['n']:,} | {r['seconds']:.2f} s | {r['queries']:,.0f} |"


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
    return checks


def environment():
    import django

    return (f"{platform.python_implementation()} {platform.python_version()}, Django "
            f"{django.get_version()}, SQLite {sqlite3.sqlite_version}, {platform.machine()}, "
            f"{os.cpu_count()} cores")


def markdown(results, runs):
    exports = [r for r in results if r["name"] in EXPORTS]
    actions = [r for r in results if r["name"] in ACTIONS]
    lines = ["| export | rows | rows/s | SQL queries | peak RSS growth | output |",
             "|---|---:|---:|---:|---:|---:|", *map(_row, exports)]
    if actions:
        lines += ["", "| reference action, on every row | rows | wall time | SQL queries |",
                  "|---|---:|---:|---:|", *map(_row, actions)]
    lines += ["", f"Median of {runs} fresh processes each; {environment()}."]
    lines += [f"- **{name}**: {text}" for name, text in EXPORTS.items()
              if any(r["name"] == name for r in exports)]
    checks = targets(results)
    if checks:
        lines += ["", "Targets:"] + [f"- {'met' if ok else 'MISSED'}: {text}"
                                     for ok, text in checks]
    return "\n".join(lines) + "\n"


DOCS = ["README.md", "lessons/02_export.md"]
MARKERS = ("<!-- bench -->\n", "<!-- /bench -->\n")


def update_docs(table):
    """Put `table` between the bench markers of the README and the export lesson."""
    from .metadata import ROOT

    start, end = MARKERS
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
    parser.add_argument("--only", choices=[*EXPORTS, *ACTIONS], action="append",
                        help="measure only these (repeatable); all by default")
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
    print("| measured | rows | rows/s or time | SQL queries | ...")
    results = run(args.rows, args.runs, args.only or [*EXPORTS, *ACTIONS])
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
