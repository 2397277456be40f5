"""`workbook watch`: re-run an exercise's tests each time a file of it is saved.

One warm process: pytest, Django and the workbook's test helpers are imported once, then each
run happens in a fresh fork of that process (the child runs pytest.main and exits, the parent
waits). Nothing a run imports or changes (the learner's admin.py, Django's app registry and
settings, the test database) outlives it, so every run sees the files as they are now. The
exercise's files are watched with watchfiles (change events, not polling).

Each run's output is kept until it ends; then, on a terminal, the screen is cleared (as
rustlings does) and one status line (tests passing, points, the first failing task), read
from the run's --workbook-report, comes above it.
"""

import json
import os
import shutil
import signal
import sys
import tempfile
import warnings
from pathlib import Path

from . import dbimage, metadata

# Imported once in the watching process so that each forked run starts warm. None of them
# sets Django up or imports an exercise: that happens in each run, on the current files.
WARM_MODULES = (
    # Not the plugins named with -p (pytest_django.plugin, workbook.pytest_plugin): pytest
    # rewrites their asserts on import, and warns when it cannot (pytest_django.fixtures
    # imports the plugin). What they import is warm.
    "pytest",
    "django.test",
    "django.test.client",
    "django.db.backends.sqlite3.base",
    "django.db.backends.sqlite3.creation",
    "django.contrib.admin",
    "django.contrib.admin.helpers",
    "django.contrib.admin.views.main",
    "django.contrib.messages",
    "django.core.management.commands.migrate",
    "django.views.generic",
    "workbook.testing",
    "workbook.apps",
    # What a run imports besides (python -m workbook bench --loop measures the gain); the
    # models modules of django.contrib cannot be imported before Django is set up.
    "_pytest.faulthandler", "_pytest.helpconfig", "_pytest.junitxml", "_pytest.pastebin",
    "_pytest.setuponly", "_pytest.setupplan", "_pytest.skipping", "_pytest.threadexception",
    "_pytest.tracemalloc", "_pytest.unittest", "_pytest.unraisableexception",
    "_pytest.warnings", "xml.etree.ElementTree",
    "django.conf.locale.en.formats", "django.conf.urls",
    "django.contrib.admin.apps", "django.contrib.admin.templatetags.admin_list",
    "django.contrib.admin.templatetags.admin_modify", "django.contrib.admin.templatetags.log",
    "django.contrib.auth.apps", "django.contrib.auth.checks",
    "django.contrib.auth.context_processors", "django.contrib.auth.management",
    "django.contrib.auth.password_validation", "django.contrib.auth.tokens",
    "django.contrib.contenttypes.apps", "django.contrib.contenttypes.checks",
    "django.contrib.contenttypes.management", "django.contrib.messages.apps",
    "django.contrib.messages.context_processors", "django.contrib.messages.middleware",
    "django.contrib.messages.storage.fallback", "django.contrib.sessions.apps",
    "django.contrib.sessions.backends.cache", "django.contrib.sessions.middleware",
    "django.contrib.sessions.serializers", "django.contrib.sites.shortcuts",
    "django.contrib.staticfiles.apps", "django.contrib.staticfiles.checks",
    "django.contrib.staticfiles.finders", "django.contrib.staticfiles.storage",
    "django.core.cache.backends.locmem", "django.core.management.commands.createcachetable",
    "django.core.management.commands.makemigrations", "django.db.migrations.writer",
    "django.db.models.sql.compiler", "django.middleware.clickjacking",
    "django.middleware.common", "django.middleware.csrf", "django.middleware.security",
    "django.template.context_processors", "django.template.loaders.app_directories",
    "django.template.loaders.cached", "django.template.loaders.filesystem",
    "django.templatetags.cache", "django.templatetags.l10n", "django.templatetags.tz",
    "django.views.csrf", "django.views.defaults",
)


def warm_up():
    """Import what every run needs; a module that cannot be imported yet is left to the run.
    The runs share a folder of test database images (dbimage), this process's own."""
    import atexit
    import importlib

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "workbook.settings")
    if not os.environ.get(dbimage.VARIABLE):
        images = tempfile.mkdtemp(prefix="workbook-db-images-")
        atexit.register(shutil.rmtree, images, ignore_errors=True)
        os.environ[dbimage.VARIABLE] = images
    for name in WARM_MODULES:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - the run itself will import it, and say what fails
            pass


def pytest_args(exercise, extra=(), report=None, terminal=False):
    """The run's arguments: its report for the status line, and colours that a terminal would
    have had (the run writes to a file, which pytest would print in black and white)."""
    args = [f"exercises/{exercise.folder}", "-q", "-p", "no:cacheprovider"]
    if report:
        args.append(f"--workbook-report={report}")
    if terminal:
        args.append("--color=yes")
    return [*args, *extra]


def fork_run(exercise, extra=(), output=None, own_group=False):
    """Fork a child of this warm process that runs the exercise's tests; the child's pid.

    OUTPUT: a file for the child's stdout and stderr, its stdin from /dev/null (the mutation
    check's worker reads the verdict there and talks to its parent on its own stdin/stdout).
    OWN_GROUP: the child leads a process group, so that a run over its time is killed with
    all it started; watch leaves it in the terminal's group, where Ctrl-C reaches it."""
    sys.stdout.flush()
    sys.stderr.flush()
    with warnings.catch_warnings():
        # watchfiles' watcher thread is native and holds no Python lock the child needs.
        warnings.filterwarnings("ignore", message=".*fork.*", category=DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child

        def run():
            if own_group:
                os.setpgid(0, 0)
            if output is not None:
                _redirect(output)
            import pytest

            return pytest.main(pytest_args(exercise, extra))

        _run_then_exit(run)
    if own_group:
        try:  # both sides set the group: a kill right after the fork finds it either way
            os.setpgid(pid, pid)
        except OSError:  # the child did it first, or has exited already
            pass
    return pid


def _redirect(output, append=False):
    """Point this process's stdout and stderr at OUTPUT (truncated; with APPEND, written at
    its end, wherever that is then) and stdin at /dev/null."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | (os.O_APPEND if append else 0)
    fd = os.open(output, flags, 0o600)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)


def run_once(exercise, extra=(), report=None, output=None, terminal=False):
    """Run the exercise's tests in a fresh fork of this process; its exit status. With
    `output`, the run writes there (stdout and stderr) instead of to the screen."""
    return Ahead(exercise, extra, report, output, terminal).go()


class Ahead:
    """A run started ahead of the save, in a fork: pytest starts, sets Django up and collects
    the tests (none of which imports the learner's admin.py or templates), then waits; go()
    lets it import the admins and run the tests, cancel() ends it unrun. What the save
    changed is thus all the run has left to do (`workbook bench --loop` measures it)."""

    def __init__(self, exercise, extra=(), report=None, output=None, terminal=False,
                 halves=False):
        sys.stdout.flush()
        sys.stderr.flush()
        columns = shutil.get_terminal_size().columns
        ready, self.signal = os.pipe()
        with warnings.catch_warnings():
            # watchfiles' watcher thread is native and holds no Python lock the child needs.
            warnings.filterwarnings("ignore", message=".*fork.*", category=DeprecationWarning)
            self.pid = os.fork()
        if self.pid == 0:
            os.close(self.signal)
            _child(exercise, extra, report, output, terminal, columns, ready, halves)
        os.close(ready)

    def go(self):
        """Run the tests now; their exit status."""
        try:
            os.write(self.signal, b"go")
        except BrokenPipeError:  # the run ended before it waited (it could not start)
            pass
        finally:
            os.close(self.signal)
        return _wait(self.pid)

    def cancel(self):
        """End the run without running a test (it exits when its pipe closes)."""
        os.close(self.signal)
        return _wait(self.pid)


class _WaitForTheSave:
    """The child's pytest plugin: after the collection, wait until go() (or the end); with
    HALVES, the tests then run in two forked halves (halves.py)."""

    def __init__(self, ready, halves=False):
        self.ready, self.halves = ready, halves

    def pytest_collection_finish(self, session):
        if not os.read(self.ready, 2):  # cancel(): the watcher wants no run from this one
            os._exit(0)
        start_now(session)
        if self.halves:
            from . import halves

            halves.split(session)


def start_now(session):
    """A run collected ahead starts: it imports the admins as they are now, and its clock
    starts here (pytest times it from the session's start, and the wait for the save is no
    part of the time it prints, "N passed in ...")."""
    from . import apps

    terminal = session.config.pluginmanager.get_plugin("terminalreporter")
    if terminal is not None and hasattr(terminal, "_session_start"):
        from _pytest import timing

        terminal._session_start = timing.Instant()
    apps.discover_admins()


def _child(exercise, extra, report, output, terminal, columns, ready, halves=False):
    """In the fork: one pytest run, started ahead, that waits for the save."""

    def run():
        if output:
            _write_to(output, columns)
        import pytest

        from . import apps

        apps.defer_admins = True
        return pytest.main(pytest_args(exercise, extra, report, terminal),
                           plugins=[_WaitForTheSave(ready, halves)])

    _run_then_exit(run)


def _run_then_exit(run):
    """In a forked child: RUN (a pytest run, its exit status) from the workbook's root with
    Ctrl-C as Python's own, then exit without running the parent's cleanup."""
    code = 3
    try:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        os.chdir(metadata.ROOT)
        code = int(run())
    except KeyboardInterrupt:
        code = 2
    except BaseException:  # noqa: BLE001 - a crash of the run must not become a 2nd watcher
        import traceback

        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _wait(pid):
    """The child's exit status; on Ctrl-C (which reached it too, same process group), let it
    finish, then stop."""
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            return os.waitstatus_to_exitcode(status)
        except ChildProcessError:
            return 3
        except KeyboardInterrupt:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
            raise


def _write_to(path, columns):
    """In the child: stdout and stderr go to `path`, and pytest's rules keep the terminal's
    width (it would take 80 columns for a file)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    os.environ["COLUMNS"] = str(columns)


CLEAR = "\033[2J\033[H"  # erase the screen, cursor to the top left


def status_line(exercise, report):
    """One line on the run: tests passing, points, and the task to work on next."""
    head = f"== workbook watch: {exercise.folder}"
    if report is None:
        return f"{head} | the tests could not run (see below)"
    broken = report.get("broken", {}).get(exercise.folder)
    if broken:
        return f"{head} | {broken}: fix it first"
    # Skipped: a test this database cannot run (row locks, on SQLite); it counts for nothing.
    tests = [t for t in report["tests"]
             if t["exercise"] == exercise.folder and t["outcome"] != "skipped"]
    if not tests:
        return f"{head} | no test ran (see below)"
    passed = [t for t in tests if t["outcome"] == "passed"]
    points = sum(t["points"] for t in passed)
    possible = sum(t["points"] for t in tests)
    failing = sorted(t["task"] for t in tests if t["outcome"] != "passed")
    next_task = (f"first failing: task {failing[0]}, {exercise.tasks[failing[0] - 1]}"
                 if failing else "every test passes")
    return (f"{head} | {len(passed)}/{len(tests)} tests passing | {points}/{possible} points"
            f" | {next_task}")


def read_report(path):
    """The run's report, or None when pytest stopped before writing it (a usage error)."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def show(exercise, report, output, terminal, stream=None):
    """The run on screen: cleared first on a terminal (a pipe or a log keeps every run),
    then the status line, then what the run printed."""
    stream = stream or sys.stdout
    stream.write(CLEAR if terminal else "\n")
    stream.write(status_line(exercise, report) + "\n")
    stream.write(output)
    stream.flush()


def start_run(exercise, folder, extra=(), terminal=False):
    """A run started ahead (see Ahead) whose report and output go to files in `folder`."""
    for path in _files(folder):
        if os.path.exists(path):
            os.remove(path)
    report, output = _files(folder)
    # Split over two cores unless the run was asked for more than the whole suite (-x, -k).
    return Ahead(exercise, extra, report=report, output=output, terminal=terminal,
                 halves=not extra)


def _files(folder):
    return os.path.join(folder, "report.json"), os.path.join(folder, "output.txt")


def finish_and_show(exercise, run, folder, terminal=False):
    """Let the run go, then show it (after Ctrl-C too: what it printed before it stopped)."""
    try:
        run.go()
    finally:
        report, output = _files(folder)
        show(exercise, read_report(report), _read(output), terminal)


def only_learner_files(exercise, paths):
    """Whether a save changed only what a run started ahead has not imported yet: the
    exercise's admin.py and templates. Anything else (models.py, the tests) needs a run
    started afresh."""
    mine = {(exercise.path / name).resolve() for name in exercise.learner_files}
    return all(Path(path).resolve() in mine for path in paths)


def _read(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def _saved(notify):
    """Block until a file of the exercise changes (not Python's bytecode cache, nor an
    editor's temporary file); the paths changed. Changes made while a run was going count."""
    from watchfiles import Change, DefaultFilter

    relevant = DefaultFilter()
    while True:
        # 50 ms without a new change ends a save (editors write a file in several steps).
        raw = notify.watch(DEBOUNCE_MS, STEP_MS, 0, None)
        if raw == "signal":
            raise KeyboardInterrupt
        if raw in ("stop", "timeout"):
            continue
        changed = {path for change, path in raw if relevant(Change(change), path)}
        if changed:
            return changed


DEBOUNCE_MS, STEP_MS = 400, 50


def watch(exercise, max_runs=None, extra=()):
    """Run the exercise's tests now and after every save, until Ctrl-C (or max_runs)."""
    from watchfiles._rust_notify import RustNotify  # watchfiles' documented backend

    warm_up()
    terminal = sys.stdout.isatty()
    runs, run = 0, None
    try:
        # Watching starts before the first run, so that a save during a run is not missed.
        with RustNotify([str(exercise.path)], False, False, 300, True, False) as notify, \
                tempfile.TemporaryDirectory(prefix="workbook-watch-") as folder:
            run = start_run(exercise, folder, extra, terminal)
            while True:
                runs += 1
                started, run = run, None
                finish_and_show(exercise, started, folder, terminal)
                if max_runs is not None and runs >= max_runs:
                    break
                print("== waiting for you to save a file (Ctrl-C to stop)...", flush=True)
                run = start_run(exercise, folder, extra, terminal)  # while you read and edit
                if not only_learner_files(exercise, _saved(notify)):
                    run.cancel()
                    run = start_run(exercise, folder, extra, terminal)
    except KeyboardInterrupt:
        print("\nStopped watching.", flush=True)
    finally:
        if run is not None:
            run.cancel()
    return 0
