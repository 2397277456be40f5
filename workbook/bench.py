"""Benchmark the CSV export through the admin, the way a user runs it.

    python -m workbook bench [--rows 10000 100000] [--runs 3] [--markdown FILE] [--update-docs]

Each measurement runs in a fresh process on a SQLite file: it logs in, exports a few rows to
warm up, then POSTs the Article changelist of exercise 02 with "select all" and reads the
whole response. It reports rows per second, SQL queries (counted with
connection.execute_wrapper, which has no cap), the growth of peak memory (RSS) during the
request, and the bytes sent. Each figure is the median of --runs processes.
"""

import argparse
import csv
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VARIANTS = {
    "reference": "export_as_csv from solutions/02_export: values_list, iterator, streaming",
    "seed": "the seed lesson's version: HttpResponse, a loop, article.author per row",
}


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
    import django

    django.setup()
    from django.conf import settings

    settings.DEBUG = False  # DEBUG keeps every query in memory


def make_database(path, rows):
    """A SQLite file with `rows` articles by rows/50 authors, and an admin user."""
    _setup_django(path)
    from django.apps import apps
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.utils import timezone

    call_command("migrate", verbosity=0)
    User = get_user_model()
    User.objects.create_superuser("bench", password="bench")
    authors = User.objects.bulk_create(
        User(username=f"author{i}") for i in range(max(1, rows // 50))
    )
    Article = apps.get_model("export", "Article")
    now = timezone.now()
    batch = []
    for i in range(rows):
        batch.append(
            Article(
                title=f"Article number {i}, on admin actions",
                author=authors[i % len(authors)],
                status="published" if i % 3 else "draft",
                pub_date=now if i % 3 else None,
            )
        )
        if len(batch) == 10_000:
            Article.objects.bulk_create(batch)
            batch = []
    Article.objects.bulk_create(batch)


def measure(database, variant):
    """One measurement in this process: warm up, then export every article once."""
    _setup_django(database)
    from django.apps import apps
    from django.contrib import admin
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.urls import reverse

    Article = apps.get_model("export", "Article")
    model_admin = admin.site.get_model_admin(Article)
    action = "export_as_csv"
    if variant == "seed":
        model_admin.actions = [seed_export_as_csv]
        action = "seed_export_as_csv"
    client = Client()
    client.force_login(get_user_model().objects.get(username="bench"))
    url = reverse("admin:export_article_changelist")
    first = Article.objects.values_list("pk", flat=True).first()

    def export(select_across):
        data = {"action": action, "index": 0, "_selected_action": [first]}
        data["select_across"] = "1" if select_across else "0"
        response = client.post(url, data)
        if response.streaming:
            return sum(len(chunk) for chunk in response.streaming_content)
        return len(response.content)

    export(select_across=False)  # warm-up: imports, templates, connection
    queries = 0

    def count(execute, sql, params, many, context):
        nonlocal queries
        queries += 1
        return execute(sql, params, many, context)

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with connection.execute_wrapper(count):
        start = time.perf_counter()
        size = export(select_across=True)
        seconds = time.perf_counter() - start
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "seconds": seconds,
        "queries": queries,
        "peak_mb": (rss_after - rss_before) / 1024,
        "bytes": size,
    }


def run(rows_list, runs, variants):
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for rows in rows_list:
            database = Path(tmp) / f"bench-{rows}.sqlite3"
            subprocess.run(
                [sys.executable, "-m", "workbook.bench", "--make", str(database), str(rows)],
                check=True,
            )
            for variant in variants:
                samples = []
                for _ in range(runs):
                    done = subprocess.run(
                        [sys.executable, "-m", "workbook.bench", "--measure", str(database),
                         variant],
                        check=True, capture_output=True, text=True,
                    )
                    samples.append(json.loads(done.stdout))
                median = {k: statistics.median(s[k] for s in samples) for k in samples[0]}
                results.append({"variant": variant, "rows": rows, **median})
                print(_row(results[-1]), flush=True)
    return results


HEADER = "| export | rows | rows/s | SQL queries | peak RSS growth | output |"


def _row(r):
    return (
        f"| {r['variant']} | {r['rows']:,} | {r['rows'] / r['seconds']:,.0f} | "
        f"{r['queries']:,.0f} | {r['peak_mb']:.1f} MB | {r['bytes'] / 1e6:.1f} MB |"
    )


def environment():
    import django

    return (
        f"{platform.python_implementation()} {platform.python_version()}, Django "
        f"{django.get_version()}, SQLite {__import__('sqlite3').sqlite_version}, "
        f"{platform.machine()}, {os.cpu_count()} cores"
    )


def markdown(results, runs):
    lines = [HEADER, "|---|---:|---:|---:|---:|---:|", *map(_row, results)]
    lines += ["", f"Median of {runs} fresh processes each; {environment()}."]
    lines += [f"- **{name}**: {text}" for name, text in VARIANTS.items()]
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
    parser = argparse.ArgumentParser(prog="workbook bench", description=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--variant", choices=VARIANTS, action="append")
    parser.add_argument("--markdown", metavar="FILE", help="also write the table to FILE")
    parser.add_argument(
        "--update-docs", action="store_true",
        help=f"write the table into {' and '.join(DOCS)}",
    )
    parser.add_argument("--make", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--measure", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.make:
        return make_database(args.make[0], int(args.make[1]))
    if args.measure:
        print(json.dumps(measure(*args.measure)))
        return 0
    print(HEADER)
    results = run(args.rows, args.runs, args.variant or list(VARIANTS))
    table = markdown(results, args.runs)
    if args.markdown:
        Path(args.markdown).write_text(table)
        print(f"Wrote {args.markdown}")
    if args.update_docs:
        update_docs(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
