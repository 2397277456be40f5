"""Which database the workbook runs on: SQLite by default, or the one $DATABASE_URL names.

`--database-url URL` (serve, bench, verify) sets $DATABASE_URL for the command and everything
it starts. The URL is read by dj-database-url, so `postgres://user:password@host:5432/name`
works as it does on Heroku or in any twelve-factor app; PostgreSQL is spoken through psycopg 3.
"""

import os
import urllib.parse
from contextlib import contextmanager

VARIABLE = "DATABASE_URL"
ENGINES = ("django.db.backends.postgresql", "django.db.backends.sqlite3")


class DatabaseUrlError(ValueError):
    """A URL the workbook cannot use, said in one line."""


def parse(url):
    """Django's DATABASES entry for URL, or DatabaseUrlError saying what is wrong with it."""
    import dj_database_url

    try:
        database = dj_database_url.parse(url)
    except ValueError as error:
        raise DatabaseUrlError(f"{shown(url)!r} is not a database URL: use e.g. "
                               "postgres://user:password@localhost:5432/workbook") from None
    if database["ENGINE"] not in ENGINES:
        raise DatabaseUrlError(f"{shown(url)}: the workbook runs on SQLite and PostgreSQL "
                               "only (postgres://... or sqlite:///...)")
    if not database.get("NAME"):
        raise DatabaseUrlError(f"{shown(url)} names no database: add it after the host, "
                               "e.g. .../workbook")
    return database



def use(url):
    """Make URL this process's database, and that of every process it starts."""
    parse(url)
    os.environ[VARIABLE] = url


def use_database(url=None, needs_createdb=False):
    """Point this process, and what it starts, at URL (else $DATABASE_URL, else SQLite), once
    the server answers (and, with NEEDS_CREATEDB, lets the role create test databases).

    Returns the URL in use, or None for SQLite; DatabaseUrlError says why not, in one line,
    before any test starts, instead of a traceback per test."""
    if url:
        use(url)
    url = os.environ.get(VARIABLE)
    if url:
        check(url, needs_createdb)
    return url


def is_postgresql(url=None):
    url = os.environ.get(VARIABLE) if url is None else url
    return bool(url) and parse(url)["ENGINE"] == "django.db.backends.postgresql"


def shown(url):
    """URL with its password replaced by ***, to print."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def named(url, name):
    """The same server and role as URL, another database."""
    return urllib.parse.urlunsplit(urllib.parse.urlsplit(url)._replace(path=f"/{name}"))


def connect(url):
    """A psycopg connection to URL's database, in autocommit."""
    import psycopg

    database = parse(url)
    return psycopg.connect(
        dbname=database["NAME"], user=database.get("USER") or None,
        password=database.get("PASSWORD") or None, host=database.get("HOST") or None,
        port=database.get("PORT") or None, autocommit=True,
    )


def create(url, name, template=None):
    """Create database NAME on URL's server (a copy of TEMPLATE, if given), replacing one of
    that name; return its URL. The role needs CREATEDB, as Django's test runs do."""
    from psycopg import sql

    drop(url, name)
    statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template:
        statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
    with connect(url) as connection:
        connection.execute(statement)
    return named(url, name)


def drop(url, name):
    """Drop database NAME on URL's server, if it exists, ending any session still on it."""
    from psycopg import sql

    with connect(url) as connection:
        connection.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@contextmanager
def scratch(url, name, template=None):
    """A new database NAME on URL's server for the block, dropped afterwards; yields its URL."""
    created = create(url, name, template)
    try:
        yield created
    finally:
        drop(url, name)


def check(url, needs_createdb=False):
    """Refuse, in one line, a PostgreSQL server that cannot be reached (or, with
    NEEDS_CREATEDB, a role that may not create the test databases) before anything starts,
    instead of a traceback per test."""
    import psycopg

    if not is_postgresql(url):
        return
    try:
        with connect(url) as connection:
            may_create = connection.execute(
                "SELECT rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user"
            ).fetchone()[0]
    except psycopg.Error as error:
        reason = "; ".join(line.strip() for line in str(error).splitlines()[:2] if line.strip())
        raise DatabaseUrlError(f"cannot use {shown(url)}: {reason or type(error).__name__}"
                               ) from None
    if needs_createdb and not may_create:
        raise DatabaseUrlError(
            f"{shown(url)}: the role may not create databases, which the test runs need "
            "(each makes a test database of its own): ALTER ROLE ... CREATEDB"
        )


def drop_abandoned(url, prefix):
    """Drop the databases PREFIX<pid> whose process has ended on this machine: what a killed
    test run or notebook kernel left behind. Only on a server on this machine (its pids)."""
    host = parse(url).get("HOST") or "localhost"
    if host not in ("localhost", "127.0.0.1", "::1") and not host.startswith("/"):
        return
    with connect(url) as connection:
        names = [name for (name,) in connection.execute(
            "SELECT datname FROM pg_database WHERE starts_with(datname, %s)", [prefix])]
    import psycopg

    for name in names:
        pid = name.removeprefix(prefix)
        if pid.isdigit() and not _running(int(pid)):
            try:
                drop(url, name)
            except psycopg.Error:
                # A session of another role is on it still (the server's autovacuum, say):
                # tidying up is not this run's job, and a later run drops it.
                pass


def _running(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
