"""Django settings for the workbook: every exercise is an installed app of one small project.

For local learning only: the secret key is public and DEBUG is on.
"""

import os
import sys

from django.core.exceptions import ImproperlyConfigured

from . import databases, switch
from .metadata import ROOT, exercises

# The exercises are apps of this project, importable wherever Django is started from.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
switch.install()

SECRET_KEY = "workbook-local-only-not-secret"
DEBUG = True
ALLOWED_HOSTS = ["localhost", "127.0.0.1", "testserver"]

INSTALLED_APPS = [
    # The workbook imports each exercise's admin.py itself (see workbook.apps), so that a
    # typo in one exercise fails that exercise's tests instead of every run.
    "django.contrib.admin.apps.SimpleAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "workbook",
    # The task queue of exercise 07: an ORM-backed queue with its own worker, `db_worker`.
    "django_tasks_db",
    *(exercise.module for exercise in exercises()),
    # The worked example the lessons show: not an exercise, not graded.
    "lessons.lending",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "workbook.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": switch.solution_template_dirs(),
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

_SQLITE = {
    "ENGINE": "django.db.backends.sqlite3",
    # WORKBOOK_DB points the benchmark (or a demo) at another database file.
    "NAME": os.environ.get("WORKBOOK_DB", ROOT / "db.sqlite3"),
    "OPTIONS": {
        # Write-ahead logging: a slow streamed export holds a read transaction open,
        # and readers no longer block writers (without it every other save fails with
        # "database is locked" after 5 s). The mode is kept in the file itself; an
        # in-memory database (the tests, the notebooks) stays "memory".
        "init_command": "PRAGMA journal_mode=WAL",
        # SQLite locks the whole database, not rows: a transaction opened with a plain
        # BEGIN that reads, then writes, fails with "database is locked" when another
        # wrote first (three clerks refunding at once got two 500s). BEGIN IMMEDIATE takes
        # the write lock at the start: the others wait for it, up to `timeout` seconds,
        # then see what it committed, as they would behind PostgreSQL's row locks.
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    },
}


def _databases():
    """SQLite in db.sqlite3 (or $WORKBOOK_DB), unless $DATABASE_URL names another database."""
    url = os.environ.get(databases.VARIABLE)
    if not url:
        return {"default": _SQLITE}
    try:
        database = databases.parse(url)
    except databases.DatabaseUrlError as error:
        raise ImproperlyConfigured(f"{databases.VARIABLE}: {error}") from None
    if databases.is_postgresql(url):
        # Each test process gets a test database of its own: the workbook's own tests
        # start pytest inside pytest, and two processes must never share (or drop) one.
        database["TEST"] = {"NAME": f"test_{database['NAME']}_{os.getpid()}"}
    return {"default": database}


DATABASES = _databases()

# Django's default password hashers, for the demo site's users. The test runs switch to a
# fast one (conftest.py): tests only need to tell users apart, not to resist brute force.

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# Django 6.1 configures mail with MAILERS (EMAIL_BACKEND is deprecated); tests swap in locmem.
MAILERS = {"default": {"BACKEND": "django.core.mail.backends.console.EmailBackend"}}

# Work too big for a request goes to a queue in the database, run by `manage.py db_worker`
# (`workbook serve` starts one beside the server).
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
# Exercise 07: a refund of more orders than this is queued instead of done in the request.
REFUND_DESK_INLINE_LIMIT = 500
