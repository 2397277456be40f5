"""Benchmark the learner's loop: how long `pytest exercises/NN` takes, and `workbook watch`.

    python -m workbook bench --loop [--runs 5] [--exercises 1 3] [--no-watch] [--markdown FILE]

Everything runs on a temporary copy of the workbook (the stubs as committed in the working
tree, never your files' state mid-edit; nothing is written to the repository).

Cold runs: each exercise's suite in a fresh `python -m pytest exercises/NN` process, as a
learner runs it (learner mode, on the stubs), and with --solutions; side by side with a
minimal pytest-django suite generated in a temporary folder (one app, one model, five tests
through the admin, the same plugin flags: --disable-plugin-autoload, pytest-django by module,
--no-migrations, an in-memory SQLite database, a fast password hasher). The runs interleave
(minimal, stubs, answers, next exercise...) so that a busy machine slows them alike; each
figure is the median of --runs, after one warm-up run of each (Python's bytecode cache;
none with --runs 1, a smoke run).

Watch latency: `workbook watch 1` on the copy; the benchmark saves exercise 01's admin.py,
alternately the stub and the reference answer, and times from the save until the run's
result line (`N failed in ...` / `N passed in ...`) is printed. The median of --saves.
"""

import argparse
import os
import re
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from . import metadata
from .mutants import NOT_COPIED

LIMIT = 1.5  # an exercise's cold run may take at most this many times the minimal suite's
LATENCY_GOAL = 0.8  # seconds from a save to the result on screen, in `workbook watch` (issue 27)
RESULT_LINE = re.compile(r"^=*\s*\d+ (passed|failed|error|errors|skipped)\b.* in [\d.]+s")

MINIMAL_FILES = {
    "pytest.ini": """\
        [pytest]
        DJANGO_SETTINGS_MODULE = minimal_settings
        pythonpath = .
        addopts = --disable-plugin-autoload -p pytest_django.plugin
            --no-migrations --strict-markers -ra
        """,
    "minimal_settings.py": """\
        SECRET_KEY = "minimal"
        INSTALLED_APPS = [
            "django.contrib.admin", "django.contrib.auth", "django.contrib.contenttypes",
            "django.contrib.sessions", "django.contrib.messages", "app",
        ]
        MIDDLEWARE = [
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.middleware.csrf.CsrfViewMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
            "django.contrib.messages.middleware.MessageMiddleware",
        ]
        ROOT_URLCONF = "minimal_urls"
        TEMPLATES = [{
            "BACKEND": "django.template.backends.django.DjangoTemplates",
            "APP_DIRS": True,
            "OPTIONS": {"context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]},
        }]
        DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
        PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
        USE_TZ = True
        DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
        """,
    "minimal_urls.py": """\
        from django.contrib import admin
        from django.urls import path

        urlpatterns = [path("admin/", admin.site.urls)]
        """,
    "app/__init__.py": "",
    "app/models.py": """\
        from django.db import models


        class Article(models.Model):
            title = models.CharField(max_length=200)
            status = models.CharField(max_length=1, default="d")
        """,
    "app/admin.py": """\
        from django.contrib import admin

        from .models import Article


        @admin.action(description="Mark selected articles as published")
        def make_published(modeladmin, request, queryset):
            queryset.update(status="p")


        @admin.register(Article)
        class ArticleAdmin(admin.ModelAdmin):
            actions = [make_published]
        """,
    "app/test_app.py": """\
        import pytest

        from .models import Article

        pytestmark = pytest.mark.django_db
        URL = "/admin/app/article/"


        def publish(client, *ids):
            return client.post(URL, {"action": "make_published", "_selected_action": ids},
                               follow=True)


        def test_create():
            Article.objects.create(title="a")
            assert Article.objects.count() == 1


        def test_the_action_is_offered(admin_client):
            choices = admin_client.get(URL).context["action_form"].fields["action"].choices
            assert "make_published" in dict(choices)


        def test_the_action_publishes(admin_client):
            article = Article.objects.create(title="a")
            publish(admin_client, article.pk)
            article.refresh_from_db()
            assert article.status == "p"


        def test_only_the_selected(admin_client):
            first, second = Article.objects.create(title="a"), Article.objects.create(title="b")
            publish(admin_client, first.pk)
            second.refresh_from_db()
            assert second.status == "d"


        def test_anonymous_users_are_sent_to_log_in(client):
            assert client.get(URL).status_code == 302
        """,
}


def write_minimal_suite(folder):
    for name, text in MINIMAL_FILES.items():
        path = Path(folder) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return Path(folder)


def copy_workbook(folder):
    """A copy of the workbook to run on; its exercises hold the stubs (as committed)."""
    from .mutants import stub_text

    target = Path(folder) / "workbook-copy"
    shutil.copytree(metadata.ROOT, target, ignore=NOT_COPIED)
    for exercise in metadata.exercises():
        for name in exercise.learner_files:
            text = stub_text(exercise, name)
            path = target / "exercises" / exercise.folder / name
            path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return target


def _env():
    env = {k: v for k, v in os.environ.items()
           if k not in ("WORKBOOK_SOLUTIONS", "PYTHONPATH", "DJANGO_SETTINGS_MODULE",
                        "PYTEST_ADDOPTS", "WORKBOOK_DB")}
    return env


def cold_run(cwd, args):
    """Wall time of one fresh `python -m pytest ARGS` process in `cwd`, and its exit status."""
    started = time.perf_counter()
    code = subprocess.call([sys.executable, "-m", "pytest", *args], cwd=cwd, env=_env(),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started, code


def measure_cold(copy, minimal, exercises, runs, progress=print):
    """{"minimal": [s...], (folder, mode): [s...]} for every run; warm-up runs not kept."""
    kinds = [("minimal", minimal, [])]
    for exercise in exercises:
        target = [f"exercises/{exercise.folder}"]
        kinds.append(((exercise.folder, "stubs"), copy, target))
        kinds.append(((exercise.folder, "solutions"), copy, [*target, "--solutions"]))
    times = {key: [] for key, _, _ in kinds}
    codes = {}
    if runs > 1:  # a warm-up run of each: bytecode caches, the disk cache
        for _, cwd, args in kinds:
            cold_run(cwd, args)
    for index in range(runs):
        progress(f"cold runs: round {index + 1} of {runs}")
        for key, cwd, args in kinds:
            took, code = cold_run(cwd, args)
            times[key].append(took)
            codes[key] = code
    return times, codes


def _read_until(process, pattern, deadline):
    """Lines of `process` up to the first matching `pattern`; (line, the time it arrived).
    What came after it in the same read is kept for the next call (watch prints a run's
    output and the line after it at once)."""
    buffer = getattr(process, "unread", b"")
    while True:
        *lines, rest = buffer.split(b"\n")
        for index, line in enumerate(lines):
            text = line.decode(errors="replace")
            if pattern.search(text):
                process.unread = b"\n".join([*lines[index + 1:], rest])
                return text, time.perf_counter()
        buffer = rest
        chunk = _read_some(process, deadline)
        if not chunk:
            raise RuntimeError(
                f"`workbook watch` printed no line matching {pattern.pattern!r}")
        buffer += chunk


def _read_some(process, deadline):
    """The next bytes `process` prints, or b"" once it has exited or the deadline passed."""
    while time.perf_counter() < deadline:
        ready, _, _ = select.select([process.stdout], [], [], 0.05)
        if ready:
            return os.read(process.stdout.fileno(), 65536)
        if process.poll() is not None:
            return b""
    return b""


def measure_watch(copy, saves, progress=print):
    """Seconds from saving exercise 01's admin.py to the result line, for each save, and the
    result lines (they alternate between the stub's failures and the answer's passes)."""
    exercise = metadata.exercises()[0]
    admin = copy / "exercises" / exercise.folder / "admin.py"
    versions = [admin.read_text(),
                (copy / "solutions" / exercise.folder / "admin.py").read_text()]
    env = {**_env(), "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-c", "import sys; from workbook.cli import main; "
               "sys.exit(main(sys.argv[1:]))", "watch", str(exercise.number),
               "--max-runs", str(saves + 1)]
    process = subprocess.Popen(command, cwd=copy, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
    latencies, results = [], []
    try:
        line, _ = _read_until(process, RESULT_LINE, time.perf_counter() + 120)
        results.append(line)
        for index in range(saves):
            _read_until(process, re.compile("waiting for you to save"),
                        time.perf_counter() + 60)
            time.sleep(0.3)  # a learner reads the result before saving again
            saved = time.perf_counter()
            admin.write_text(versions[(index + 1) % 2])
            line, shown = _read_until(process, RESULT_LINE, time.perf_counter() + 60)
            latencies.append(shown - saved)
            results.append(line)
        progress(f"watch: {saves} saves measured")
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=10)
        admin.write_text(versions[0])
    return latencies, results


def table(times, codes, exercises, runs):
    minimal = statistics.median(times["minimal"])
    lines = [
        f"Cold `pytest exercises/NN` (fresh process), median of {runs} runs, against a minimal "
        f"pytest-django suite (one app, five tests, the same plugin flags): "
        f"**{minimal:.2f} s**. Within {LIMIT}× means at most {minimal * LIMIT:.2f} s.",
        "",
        "| exercise | stubs (s) | ratio | answers (s) | ratio | within 1.5× |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for exercise in exercises:
        stub = statistics.median(times[(exercise.folder, "stubs")])
        answer = statistics.median(times[(exercise.folder, "solutions")])
        flags = []
        for mode, seconds in (("stubs", stub), ("answers", answer)):
            if seconds / minimal > LIMIT:
                flags.append(f"no ({mode})")
        if codes.get((exercise.folder, "solutions")) != 0:
            flags.append("answers fail!")
        lines.append(
            f"| {exercise.folder} | {stub:.2f} | {stub / minimal:.2f}× | {answer:.2f} | "
            f"{answer / minimal:.2f}× | {'; '.join(flags) or 'yes'} |"
        )
    return "\n".join(lines)


def watch_table(latencies):
    median = statistics.median(latencies)
    return (
        f"`workbook watch 1`: save → result line on screen, median of {len(latencies)} saves "
        f"(alternately the stub and the answer): **{median:.2f} s** (min {min(latencies):.2f}, "
        f"max {max(latencies):.2f}; goal ≤ {LATENCY_GOAL} s: "
        f"{'yes' if median <= LATENCY_GOAL else 'no'})."
    )


def main(argv=None):
    parser = argparse.ArgumentParser(prog="workbook bench --loop", description=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--runs", type=int, default=5, help="cold runs of each (default 5)")
    parser.add_argument("--exercises", nargs="+", metavar="N",
                        help="only these exercises (default: all)")
    parser.add_argument("--saves", type=int, default=6, help="saves timed in watch (default 6)")
    parser.add_argument("--no-watch", action="store_true", help="skip the watch latency")
    parser.add_argument("--markdown", metavar="FILE", help="also write the tables to FILE")
    args = parser.parse_args(argv)
    exercises = [metadata.find(name) for name in args.exercises] if args.exercises else list(
        metadata.exercises())
    if None in exercises:
        parser.error("no such exercise: " + " ".join(args.exercises))

    def progress(text):
        print(f"bench --loop: {text}", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="workbook-loopbench-") as tmp:
        minimal = write_minimal_suite(Path(tmp) / "minimal")
        copy = copy_workbook(tmp)
        times, codes = measure_cold(copy, minimal, exercises, args.runs, progress)
        output = table(times, codes, exercises, args.runs)
        if not args.no_watch:
            latencies, _ = measure_watch(copy, args.saves, progress)
            output += "\n\n" + watch_table(latencies)
    print(output)
    if args.markdown:
        Path(args.markdown).write_text(output + "\n")
        print(f"Wrote {args.markdown}")
    return 0
