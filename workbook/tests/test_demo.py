"""`workbook serve`: the seeded demo site, served on localhost."""

import http.cookiejar
import json
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
from datetime import UTC, datetime, timedelta
from functools import partial
from types import SimpleNamespace

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model

from workbook import databases, demo, metadata
from workbook.testing import form_with_button, post_data

from .test_cli import CONSOLE_SCRIPT

MODELS = [("basic_action", "Article"), ("export", "Article"), ("confirmation", "Article"),
          ("confirmation", "Comment"), ("confirmation", "FeaturedSlot"),
          ("conditional", "Article"), ("global", "Article"), ("global", "Category"),
          ("global", "ApiKey"), ("change_form", "Article"), ("change_form", "Tag"),
          ("refund_desk", "Customer"), ("refund_desk", "Order"), ("parameters", "Article"),
          ("parameters", "Category")]


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
    # 08: articles its "Archive old articles" button archives, and some it leaves alone.
    Old = apps.get_model("parameters", "Article")
    year_ago = datetime.now(UTC) - timedelta(days=365)
    assert Old.objects.filter(status="published", pub_date__lt=year_ago).exists()
    assert Old.objects.filter(status="published", pub_date__gte=year_ago).exists()
    assert first["parameters.Category"] == 6
    # 07: enough orders that "select all" is queued, some of them to skip.
    Order = apps.get_model("refund_desk", "Order")
    assert first["refund_desk.Order"] > 500
    assert {"paid", "shipped", "refunded"} == set(Order.objects.values_list("status", flat=True))
    assert editor.has_perm("refund_desk.refund_order")
    assert editor.has_perm("django_tasks_database.view_dbtaskresult"), "the queue, watched"
    assert writer.has_perm("refund_desk.change_order")
    assert not writer.has_perm("refund_desk.refund_order"), "the writer is not offered it"


@pytest.mark.django_db
def test_seeding_gives_demo_users_made_before_an_exercise_its_permissions():
    """A demo database from before exercises 06 and 07 keeps its users: the next seed tops
    them up."""
    from django.contrib.auth.models import Permission

    demo.seed()
    editor = get_user_model().objects.get(username="editor")
    editor.user_permissions.remove(*Permission.objects.filter(
        content_type__app_label__in=["change_form", "refund_desk"]))
    editor.set_password("changed")
    editor.save()

    demo.seed()

    editor = get_user_model().objects.get(username="editor")
    assert editor.has_perm("change_form.add_article") and editor.has_perm(
        "change_form.change_article")
    assert editor.has_perm("refund_desk.refund_order")
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
        browser = log_in(server, base, "admin", "admin")
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


def log_in(server, base, username, password):
    """A cookie-keeping client of the `workbook serve` SERVER at BASE, logged in through the
    login form once the server answers."""
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
    assert "Log out" in post(browser, f"{base}/admin/login/", login, {
        "username": username, "password": password, "next": "/admin/"})
    return browser


def post(browser, url, page, fields):
    """POST FIELDS to URL with the CSRF token of PAGE, as its form would; the page it leads
    to (redirects followed)."""
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)[1]
    body = urllib.parse.urlencode({**fields, "csrfmiddlewaretoken": token}, doseq=True)
    request = urllib.request.Request(url, body.encode(), headers={"Referer": url})
    return browser.open(request).read().decode()


def query(env, sql):
    """The rows of SQL on the demo database of ENV (a SQLite file, or a PostgreSQL URL)."""
    import contextlib
    import sqlite3

    url = env.get(databases.VARIABLE)
    connect = (partial(databases.connect, url) if url
               else lambda: contextlib.closing(sqlite3.connect(env["WORKBOOK_DB"])))
    with connect() as connection:
        return connection.execute(sql).fetchall()


def order_statuses(env):
    return dict(query(env, "SELECT status, COUNT(*) FROM refund_desk_order GROUP BY status"))


def serve_solutions(env, tmp_path):
    """`workbook serve --solutions` on a free port: (process, port, its log). A file, not a
    pipe: the worker prints a mail per refund (the console backend), and a pipe nobody reads
    would block it mid-task."""
    port = free_port()
    log = tmp_path / "serve.log"
    server = subprocess.Popen(
        [sys.executable, "-c", CONSOLE_SCRIPT, "serve", "--solutions", "--port", str(port)],
        env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
    )
    return server, port, log


def test_serve_runs_a_task_worker_that_does_a_queued_refund(demo_env, tmp_path):
    """The editor refunds every order with "select all": more than the inline limit, so the
    request only queues it, and the worker serve started beside the server does it."""
    env, where = demo_env
    server, port, log = serve_solutions(env, tmp_path)
    workers = []
    try:
        base = f"http://127.0.0.1:{port}"
        browser = log_in(server, base, "editor", "editor")
        workers = processes_serving(port, worker=True)
        assert workers, "serve starts a db_worker beside the server"
        before = order_statuses(env)
        assert sum(before.values()) > 500 and before["paid"] and before["shipped"]
        changelist = f"{base}/admin/refund_desk/order/"
        page = browser.open(changelist).read().decode()
        assert 'value="mark_refunded"' in page, "the demo's editor may refund orders"
        first = re.search(r'name="_selected_action" value="(\d+)"', page)[1]

        page = post(browser, changelist, page, {
            "action": "mark_refunded", "index": "0", "select_across": "1",
            "_selected_action": first})
        form = form_with_button(SimpleNamespace(content=page.encode()), "apply")
        assert form, "the refund page, with its form"
        page = post(browser, changelist, page, {
            **post_data(form["fields"]), "reason": "late", "note": "Sorry!", "apply": "yes"})

        total = sum(before.values())
        assert (f"The refund of {total} orders was queued" in page
                and "in the background" in page), "the request queues the refund"
        deadline = time.monotonic() + 60
        while (task := query(env, "SELECT status, return_value FROM "
                                  "django_tasks_database_dbtaskresult")) in (
                [], [("READY", None)], [("RUNNING", None)]):
            assert time.monotonic() < deadline, f"the worker did not run the task: {task}"
            time.sleep(0.3)
        [(status, done)] = task
        done = json.loads(done) if isinstance(done, str) else done
        assert (status, done) == ("SUCCESSFUL", {"refunded": before["paid"],
                                                 "skipped": total - before["paid"]})
        assert order_statuses(env) == {"refunded": before["paid"] + before["refunded"],
                                       "shipped": before["shipped"]}
        assert query(env, "SELECT COUNT(*) FROM refund_desk_order WHERE status = 'refunded'"
                          " AND refund_reason = 'late' AND refund_note = 'Sorry!'"
                          " AND refunded_at IS NOT NULL") == [(before["paid"],)]
    finally:
        os.killpg(server.pid, signal.SIGINT)  # Ctrl-C in its terminal
        server.wait(timeout=30)
    assert not [pid for pid in workers if alive(pid)], "Ctrl-C stops the worker too"
    output = log.read_text()
    assert "A task worker (django-tasks-db's db_worker) runs beside the server" in output
    assert output.count("Subject: Order RD-") == before["paid"], "a mail per refunded order"


def test_three_clerks_confirming_the_same_refund_at_once_refund_each_order_once(
        demo_env, tmp_path):
    """Three clerks press "Refund them" on the same ten orders at the same moment, on
    whatever database serve runs (SQLite by default: it once answered two of them with HTTP
    500, "database is locked"). Each gets a page; each order is refunded and mailed once."""
    import threading
    import urllib.error

    env, _ = demo_env
    server, port, log = serve_solutions(env, tmp_path)
    try:
        base = f"http://127.0.0.1:{port}"
        changelist = f"{base}/admin/refund_desk/order/"
        clerks = [log_in(server, base, "editor", "editor") for _ in range(3)]
        ids = [str(pk) for (pk,) in query(
            env, "SELECT id FROM refund_desk_order WHERE status = 'paid' ORDER BY id LIMIT 10")]
        assert len(ids) == 10
        pressed = []
        for browser in clerks:
            page = browser.open(changelist).read().decode()
            page = post(browser, changelist, page, {
                "action": "mark_refunded", "index": "0", "_selected_action": ids})
            form = form_with_button(SimpleNamespace(content=page.encode()), "apply")
            assert form, "the refund page, with its form"
            pressed.append((browser, page, {**post_data(form["fields"]), "reason": "late",
                                             "note": "Sorry!", "apply": "yes"}))
        together, answers = threading.Barrier(3), {}

        def confirm(number, browser, page, fields):
            together.wait()
            try:
                answers[number] = (200, post(browser, changelist, page, fields))
            except urllib.error.HTTPError as error:
                answers[number] = (error.code, error.read().decode(errors="replace")[:300])

        threads = [threading.Thread(target=confirm, args=(n, *clerk))
                   for n, clerk in enumerate(pressed)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        codes = sorted(code for code, _ in answers.values())
        assert codes == [200, 200, 200], f"the three clerks were answered {answers}"
        refunded = query(env, "SELECT COUNT(*) FROM refund_desk_order WHERE status = "
                              f"'refunded' AND id IN ({', '.join(ids)})")
        assert refunded == [(10,)]
        said = [re.sub(r"\s+", " ", page) for _, page in answers.values()]
        assert sum("10 orders were refunded" in text for text in said) == 1, said
    finally:
        os.killpg(server.pid, signal.SIGINT)
        server.wait(timeout=30)
    mails = re.findall(r"Subject: Order (RD-\S+)", log.read_text())
    assert len(mails) == len(set(mails)) == 10, f"each order mailed once: {sorted(mails)}"


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
        port = args[args.index("--port") + 1]
        kill_all(process.pid, processes_serving(port) + processes_serving(port, worker=True))
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


def processes_serving(port, worker=False):
    """The pids of every runserver on 127.0.0.1:PORT (its autoreloader and its server), or
    with WORKER, of the task worker serve started beside it (its reloader and worker)."""
    command, marker = ((b"db_worker", f"{demo.WORKER_ID}-{port}") if worker
                       else (b"runserver", f"127.0.0.1:{port}"))
    pids = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                argv = cmdline.read().split(b"\0")
        except (OSError, ValueError):
            continue
        if command in argv and marker.encode() in argv and alive(entry):
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


def start_serve(database):
    """`workbook serve` on a copy of the demo DATABASE, on a free port: (process, port, the
    pids of its runserver and of its worker) once the server answers."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-c", CONSOLE_SCRIPT, "serve", "--port", str(port)],
        env=serve_env(database), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while not (answers(port) and processes_serving(port, worker=True)):
        if time.monotonic() > deadline or server.poll() is not None:
            kill_all(server.pid, processes_serving(port) + processes_serving(port, True))
            pytest.fail("no server, or no worker beside it")
        time.sleep(0.2)
    return server, port, processes_serving(port), processes_serving(port, worker=True)


def expect_all_gone(port, children, workers, how):
    deadline = time.monotonic() + 5
    while answers(port) or any(alive(pid) for pid in children + workers):
        assert time.monotonic() < deadline, (
            f"{how} left runserver {[pid for pid in children if alive(pid)]} serving on port "
            f"{port}, or the worker {[pid for pid in workers if alive(pid)]} running"
        )
        time.sleep(0.1)


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="lists processes through /proc")
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_serve_killed_by_its_pid_stops_its_server_and_worker(signum, demo_database, tmp_path):
    database = tmp_path / "db.sqlite3"
    shutil.copy(demo_database, database)
    server, port, children, workers = start_serve(database)
    try:
        assert children, "runserver runs as a child process"

        os.kill(server.pid, signum)
        server.wait(timeout=20)
        expect_all_gone(port, children, workers, f"`kill -{signum.name} PID` of workbook serve")
    finally:
        kill_all(server.pid, children + workers + processes_serving(port)
                 + processes_serving(port, worker=True))
        server.wait()


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="lists processes through /proc")
def test_serve_whose_server_dies_stops_its_worker_too(demo_database, tmp_path):
    """A server that crashed (here: killed) ends serve, and serve stops the worker: no
    orphan left polling the queue."""
    database = tmp_path / "db.sqlite3"
    shutil.copy(demo_database, database)
    server, port, children, workers = start_serve(database)
    try:
        kill_all(os.getpgid(children[0]), children)  # runserver's group, not serve's

        assert server.wait(timeout=20) != 0
        expect_all_gone(port, children, workers, "a crashed runserver")
    finally:
        kill_all(server.pid, children + workers + processes_serving(port, worker=True))
        server.wait()


def test_serve_on_a_corrupt_database_says_what_to_do(tmp_path):
    database = tmp_path / "db.sqlite3"
    garbage = b"this is not a database, it is garbage\x00\xff" * 200
    database.write_bytes(garbage)

    status, out, err = run_serve(database, "--port", str(free_port()))

    assert (status, out) == (2, "")
    assert err == (f"workbook: {database} is not a SQLite database: delete it and run "
                   f"{metadata.runnable('workbook serve')} again; it holds only demo data\n")
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
