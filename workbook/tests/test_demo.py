"""`workbook serve`: the seeded demo site, served on localhost."""

import http.cookiejar
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model

from workbook import databases, demo, metadata

from .test_cli import CONSOLE_SCRIPT

MODELS = [("basic_action", "Article"), ("export", "Article"), ("confirmation", "Article"),
          ("confirmation", "Comment"), ("confirmation", "FeaturedSlot"),
          ("conditional", "Article"), ("global", "Article"), ("global", "Category"),
          ("global", "ApiKey"), ("change_form", "Article"), ("change_form", "Tag")]


def counts():
    return {f"{label}.{name}": apps.get_model(label, name).objects.count()
            for label, name in MODELS} | {"users": get_user_model().objects.count()}


@pytest.mark.django_db
def test_seeding_twice_adds_nothing():
    demo.seed()
    first = counts()
    demo.seed()

    assert counts() == first
    assert first["basic_action.Article"] == 300 and first["confirmation.Comment"] > 300
    assert first["change_form.Article"] == 300 and first["change_form.Tag"] >= 3
    Article = apps.get_model("change_form", "Article")
    assert Article.objects.filter(status="draft").exists()
    assert Article.objects.filter(status="published").exists()
    assert Article.objects.filter(tags__isnull=False).distinct().count() > 100
    editor = get_user_model().objects.get(username="editor")
    assert editor.has_perm("conditional.send_notifications")
    assert editor.has_perm("export.change_article")
    assert all(editor.has_perm(f"change_form.{verb}_article")
               for verb in ("view", "add", "change", "delete"))
    assert not editor.has_perm("export.add_article"), "add only where an action needs it"
    writer = get_user_model().objects.get(username="writer")
    assert writer.has_perm("change_form.change_article")
    assert not writer.has_perm("change_form.add_article")
    reader = get_user_model().objects.get(username="reader")
    assert reader.has_perm("global.view_category") and not reader.has_perm("global.change_category")
    assert reader.has_perm("change_form.view_article")
    assert not reader.has_perm("change_form.change_article")
    assert get_user_model().objects.get(username="admin").check_password("admin")


@pytest.mark.django_db
def test_seeding_gives_demo_users_made_before_an_exercise_its_permissions():
    """A demo database from before exercise 06 keeps its users: the next seed tops them up."""
    from django.contrib.auth.models import Permission

    demo.seed()
    editor = get_user_model().objects.get(username="editor")
    editor.user_permissions.remove(
        *Permission.objects.filter(content_type__app_label="change_form"))
    editor.set_password("changed")
    editor.save()

    demo.seed()

    editor = get_user_model().objects.get(username="editor")
    assert editor.has_perm("change_form.add_article") and editor.has_perm(
        "change_form.change_article")
    assert editor.check_password("changed"), "an existing user's password stays"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def demo_env(tmp_path):
    """The environment of a `workbook serve` on a new demo database of the kind this run
    tests: a SQLite file, or, where $DATABASE_URL names a PostgreSQL server, a database of its
    own there (dropped afterwards). Also: the database's URL or path, as serve prints it."""
    env = {key: value for key, value in os.environ.items() if key != "WORKBOOK_SOLUTIONS"}
    url = env.get(databases.VARIABLE)
    if url and databases.is_postgresql(url):
        with databases.scratch(url, f"workbook_demo_{uuid.uuid4().hex[:12]}") as demo_url:
            yield {**env, databases.VARIABLE: demo_url}, databases.shown(demo_url)
    else:
        env.pop(databases.VARIABLE, None)
        path = str(tmp_path / "demo.sqlite3")
        yield {**env, "WORKBOOK_DB": path}, path


def test_serve_runs_a_usable_admin_on_localhost(demo_env):
    env, where = demo_env
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-c", CONSOLE_SCRIPT, "serve", "--solutions", "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        browser = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                login = browser.open(f"{base}/admin/login/").read().decode()
                break
            except OSError:
                assert time.monotonic() < deadline and server.poll() is None, "no server"
                time.sleep(0.3)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login)[1]
        form = urllib.parse.urlencode({"username": "admin", "password": "admin",
                                       "csrfmiddlewaretoken": token, "next": "/admin/"})
        request = urllib.request.Request(f"{base}/admin/login/", form.encode(),
                                         headers={"Referer": f"{base}/admin/login/"})
        assert "Log out" in browser.open(request).read().decode()
        page = browser.open(f"{base}/admin/basic_action/article/").read().decode()

        assert 'value="make_published"' in page, "--solutions serves the reference answers"
        assert "300 articles" in page
        page = browser.open(f"{base}/admin/change_form/article/").read().decode()
        assert "300 articles" in page
        change = re.search(r'href="(/admin/change_form/article/\d+/change/)', page)[1]
        page = browser.open(f"{base}{change}").read().decode()
        assert 'value="duplicate_as_draft"' in page, "exercise 06's change page has actions"
    finally:
        os.killpg(server.pid, signal.SIGINT)
        output = server.communicate(timeout=30)[0]
    assert "admin / admin" in output and "for local development only" in output
    assert f"on {where}:" in output, "it says which database it serves"


def test_serve_on_a_postgresql_server_that_does_not_answer_says_so_in_one_line(tmp_path):
    url = f"postgres://workbook:secret@127.0.0.1:{free_port()}/workbook"

    status, out, err = run_serve(tmp_path / "db.sqlite3", "--port", str(free_port()),
                                 "--database-url", url, timeout=30)

    assert (status, out) == (2, "") and "Traceback" not in err
    assert err.startswith(f"workbook: cannot use {url.replace('secret', '***')}: ")
    assert "Connection refused" in err and err.count("\n") == 1
    assert "secret" not in err, "the password is never printed"


@pytest.mark.parametrize("url", ["mysql://root@localhost/workbook", "postgres://localhost",
                                 "not a url"])
def test_serve_refuses_a_database_url_it_cannot_use_before_starting(url, tmp_path):
    database = tmp_path / "db.sqlite3"

    status, out, err = run_serve(database, "--port", str(free_port()), "--database-url", url,
                                 timeout=30)

    assert (status, out) == (2, "") and "Traceback" not in err
    assert "argument --database-url: " in err and err.rstrip().count("\n") == 1, err
    assert not database.exists(), "nothing starts before the URL is checked"


# --- Stopping, refusing bad input, and the demo database's file (issue 13, items 12 to 14) ---

PREPARE = "from workbook import demo; demo.prepare(False)"


def serve_env(database):
    """`workbook serve` on the SQLite file DATABASE, whatever database this run tests: what
    these tests check (the file, its mode, its WAL) is SQLite's."""
    env = {**os.environ, "WORKBOOK_DB": str(database)}
    env.pop("WORKBOOK_SOLUTIONS", None)
    env.pop(databases.VARIABLE, None)
    return env


def run_serve(database, *args, timeout=60, cwd=None):
    """`workbook serve ARGS` to its end: (exit status, stdout, stderr). Whatever it started is
    killed if it has not ended by TIMEOUT (a hang fails the test, it does not stop the run)."""
    process = subprocess.Popen(
        [sys.executable, "-c", CONSOLE_SCRIPT, "serve", *args], env=serve_env(database),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        cwd=cwd,
    )
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_all(process.pid, processes_serving(args[args.index("--port") + 1]))
        out, err = process.communicate()
        pytest.fail(f"workbook serve {' '.join(args)} still ran after {timeout} s:\n{out}{err}")
    return process.returncode, out, err


@pytest.fixture(scope="module")
def demo_database(tmp_path_factory):
    """A demo database as `workbook serve` prepares it (migrated and seeded), made once."""
    database = tmp_path_factory.mktemp("demo") / "db.sqlite3"
    subprocess.run([sys.executable, "-c", PREPARE], env=serve_env(database), check=True)
    return database


def alive(pid):
    """Whether process PID runs (a zombie, ended but not yet reaped, does not)."""
    try:
        with open(f"/proc/{pid}/stat") as status:
            return status.read().rpartition(")")[2].split()[0] not in "ZX"
    except FileNotFoundError:
        return False


def processes_serving(port):
    """The pids of every runserver on 127.0.0.1:PORT (its autoreloader and its server)."""
    pids = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                argv = cmdline.read().split(b"\0")
        except (OSError, ValueError):
            continue
        if b"runserver" in argv and f"127.0.0.1:{port}".encode() in argv and alive(entry):
            pids.append(int(entry))
    return pids


def kill_all(leader, pids):
    for kill, target in [(os.killpg, leader)] + [(os.kill, pid) for pid in pids]:
        try:
            kill(target, signal.SIGKILL)
        except ProcessLookupError:
            pass


def answers(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="lists processes through /proc")
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_serve_killed_by_its_pid_stops_its_server(signum, demo_database, tmp_path):
    database = tmp_path / "db.sqlite3"
    shutil.copy(demo_database, database)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-c", CONSOLE_SCRIPT, "serve", "--port", str(port)],
        env=serve_env(database), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    children = []
    try:
        deadline = time.monotonic() + 60
        while not answers(port):
            assert time.monotonic() < deadline and server.poll() is None, "no server"
            time.sleep(0.2)
        children = processes_serving(port)
        assert children, "runserver runs as a child process"

        os.kill(server.pid, signum)
        server.wait(timeout=20)
        deadline = time.monotonic() + 5
        while answers(port) or any(alive(pid) for pid in children):
            assert time.monotonic() < deadline, (
                f"`kill -{signum.name} PID` of workbook serve left runserver "
                f"{[pid for pid in children if alive(pid)]} serving on port {port}"
            )
            time.sleep(0.1)
    finally:
        kill_all(server.pid, children + processes_serving(port))
        server.wait()


def test_serve_on_a_corrupt_database_says_what_to_do(tmp_path):
    database = tmp_path / "db.sqlite3"
    garbage = b"this is not a database, it is garbage\x00\xff" * 200
    database.write_bytes(garbage)

    status, out, err = run_serve(database, "--port", str(free_port()))

    assert (status, out) == (2, "")
    assert err == (f"workbook: {database} is not a SQLite database: delete it and run "
                   "workbook serve again; it holds only demo data\n")
    assert database.read_bytes() == garbage, "nothing half done"


def test_serve_on_an_admin_that_fails_the_system_checks_says_which_in_one_line(tmp_path):
    """runserver would print a SystemCheckError traceback and wait, serving nothing."""
    from workbook import mutants

    copy = tmp_path / "workbook"
    shutil.copytree(metadata.ROOT, copy, ignore=mutants.NOT_COPIED)
    admin_py = copy / "exercises/04_conditional/admin.py"
    shutil.copy(metadata.SOLUTIONS_DIR / "04_conditional/admin.py", admin_py)
    admin_py.write_text(admin_py.read_text().replace("def has_notify_permission",
                                                     "def has_notfy_permission"))
    database = tmp_path / "db.sqlite3"

    status, out, err = run_serve(database, "--port", str(free_port()), cwd=copy, timeout=60)

    assert (status, out) == (2, "") and "Traceback" not in err
    assert "fails Django's system checks" in err
    assert re.search(r"admin\.E129 .*has_notify_permission", err)
    assert not database.exists(), "nothing half done"


@pytest.mark.parametrize("port", ["99999", "0", "eighty"])
def test_serve_refuses_a_port_that_is_not_one_before_starting(port, tmp_path):
    database = tmp_path / "db.sqlite3"

    status, out, err = run_serve(database, "--port", port, timeout=30)

    assert status == 2 and "Traceback" not in err
    assert f"argument --port: {port!r} is not a port: use a number from 1 to 65535" in err
    assert not database.exists(), "nothing starts before the port is checked"


def test_serve_on_a_port_in_use_says_so_in_one_line(tmp_path):
    database = tmp_path / "db.sqlite3"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        status, out, err = run_serve(database, "--port", str(port), timeout=30)

    assert (status, out) == (2, "")
    assert err == (f"workbook: port {port} is already in use: stop what uses it, or choose "
                   "another with --port\n")
    assert not database.exists(), "nothing half done"


def test_demo_database_lets_a_write_through_while_a_slow_export_reads(demo_database):
    import sqlite3

    reader = sqlite3.connect(demo_database, isolation_level=None)
    writer = sqlite3.connect(demo_database, timeout=0.5)
    try:
        # A streamed export's read transaction, still open while its rows download.
        reader.execute("BEGIN")
        before = reader.execute("SELECT title FROM basic_action_article WHERE id = 1").fetchone()

        with writer:  # fails with "database is locked" unless the file is in WAL mode
            writer.execute("UPDATE basic_action_article SET title = 'Renamed' WHERE id = 1")

        assert reader.execute(
            "SELECT title FROM basic_action_article WHERE id = 1").fetchone() == before
        reader.execute("COMMIT")
        assert reader.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        reader.close()
        writer.close()


def test_demo_users_get_django_default_hashes_and_tests_a_fast_one(demo_database):
    import sqlite3

    from django.contrib.auth.hashers import get_hasher

    with sqlite3.connect(demo_database) as db:
        hashes = dict(db.execute("SELECT username, password FROM auth_user"
                                 " WHERE username IN ('admin', 'editor', 'writer', 'reader')"))
    assert len(hashes) == 4
    for username, encoded in hashes.items():
        assert encoded.startswith("pbkdf2_sha256$"), f"{username}: {encoded.split('$')[0]}"
    assert get_hasher().algorithm == "md5", "the test runs keep a fast hasher"


def test_demo_database_and_its_side_files_are_the_owners_only(demo_database, tmp_path):
    import sqlite3

    assert stat.S_IMODE(os.stat(demo_database).st_mode) == 0o600
    # An existing database made readable by all (as before) is tightened on the next serve.
    database = tmp_path / "db.sqlite3"
    shutil.copy(demo_database, database)
    os.chmod(database, 0o644)
    subprocess.run([sys.executable, "-c", PREPARE], env=serve_env(database), check=True)
    assert stat.S_IMODE(os.stat(database).st_mode) == 0o600

    with sqlite3.connect(database) as db:  # an open connection has its -wal and -shm files
        db.execute("SELECT count(*) FROM auth_user").fetchone()
        for suffix in ("-wal", "-shm"):
            side = database.with_name(database.name + suffix)
            assert stat.S_IMODE(os.stat(side).st_mode) == 0o600, side.name
