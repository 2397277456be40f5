"""The learner's loop: `workbook watch` (a warm process, a fork per run) and its benchmark.

Nothing here asserts a timing: `python -m workbook bench --loop` measures them.
"""

import io
import json
import os
import pty
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

from workbook import dbimage, loopbench, metadata, watch

# Ctrl-C as in a terminal: a run started in the background of a script (CI, say) inherits
# SIGINT ignored, and Python then leaves it ignored.
CONSOLE_SCRIPT = (
    "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "from workbook.cli import main; sys.exit(main(sys.argv[1:]))"
)
EXERCISE = metadata.exercises()[0]
RESULT = re.compile(r"^(\d+) (passed|failed)", re.MULTILINE)


def _env():
    return {k: v for k, v in os.environ.items()
            if k not in ("WORKBOOK_SOLUTIONS", "DJANGO_SETTINGS_MODULE", "PYTEST_ADDOPTS")}


@pytest.fixture(scope="module")
def copy(tmp_path_factory):
    """A copy of the workbook whose exercises hold the stubs."""
    return loopbench.copy_workbook(tmp_path_factory.mktemp("loop"))


def start_watch(copy, *args, limit=180):
    """`workbook watch ARGS` in COPY, killed after LIMIT seconds: a watcher that hangs fails
    its test with what it printed, instead of holding up the whole run."""
    watcher = subprocess.Popen(
        [sys.executable, "-c", CONSOLE_SCRIPT, "watch", str(EXERCISE.number), *args],
        cwd=copy, env={**_env(), "PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )
    deadline = threading.Timer(limit, watcher.kill)
    deadline.daemon = True
    deadline.start()
    return watcher


def read_until(process, text, lines):
    for line in process.stdout:
        lines.append(line)
        if text in line:
            return
    pytest.fail("watch stopped before printing " + repr(text) + ":\n" + "".join(lines))


def test_watch_runs_the_fixed_file_without_restarting(copy):
    """The second run, in the same watch process, imports the saved admin.py afresh."""
    admin = copy / "exercises" / EXERCISE.folder / "admin.py"
    stub = admin.read_text()
    watcher = start_watch(copy, "--max-runs", "2")
    lines = []
    try:
        read_until(watcher, "waiting for you to save", lines)
        admin.write_text((copy / "solutions" / EXERCISE.folder / "admin.py").read_text())
        output = "".join(lines) + watcher.stdout.read()
        assert watcher.wait(timeout=60) == 0
    finally:
        watcher.kill() if watcher.poll() is None else None
        admin.write_text(stub)

    assert output.count(f"== workbook watch: {EXERCISE.folder}") == 2, output
    first, second = RESULT.findall(output)
    assert first[1] == "failed" and second == (first[0], "passed"), output
    # The status line, from each run's report, comes above the run's output.
    tests, points = int(first[0]), EXERCISE.points
    status = [line for line in output.splitlines() if line.startswith("== workbook watch:")]
    assert status == [
        f"== workbook watch: {EXERCISE.folder} | 0/{tests} tests passing | 0/{points} points"
        f" | first failing: task 1, {EXERCISE.tasks[0]}",
        f"== workbook watch: {EXERCISE.folder} | {tests}/{tests} tests passing | "
        f"{points}/{points} points | every test passes",
    ], output
    assert output.index(status[0]) < output.index("FAILURES"), output
    assert "\033[" not in output, "not a terminal: nothing cleared, no colours"
    assert "Warning" not in output, output  # e.g. pytest's "cannot be rewritten"


def test_watch_ignores_bytecode_and_stops_on_ctrl_c(copy):
    watcher = start_watch(copy)
    lines = []
    try:
        read_until(watcher, "waiting for you to save", lines)
        cache = copy / "exercises" / EXERCISE.folder / "__pycache__" / "ignored.pyc"
        cache.parent.mkdir(exist_ok=True)
        cache.write_bytes(b"")
        time.sleep(1)  # no run for a change in Python's bytecode cache
        watcher.send_signal(signal.SIGINT)
        output = "".join(lines) + watcher.stdout.read()
        assert watcher.wait(timeout=30) == 0
    finally:
        watcher.kill() if watcher.poll() is None else None

    assert output.count("== workbook watch:") == 1, output
    assert output.rstrip().endswith("Stopped watching."), output
    assert "Traceback" not in output, output


def test_watch_clears_the_screen_on_a_terminal(copy):
    """On a terminal (a pty here) each run starts on a cleared screen, its status line first;
    pytest's colours are kept though the run writes to a file."""
    parent, child = pty.openpty()
    watcher = subprocess.Popen(
        [sys.executable, "-c", CONSOLE_SCRIPT, "watch", str(EXERCISE.number), "--max-runs",
         "1"], cwd=copy, env={**_env(), "PYTHONUNBUFFERED": "1"}, stdin=subprocess.DEVNULL,
        stdout=child, stderr=child,
    )
    os.close(child)
    chunks = []
    try:
        while True:
            try:
                chunk = os.read(parent, 65536)
            except OSError:  # the pty closed: the watcher exited
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert watcher.wait(timeout=180) == 0
    finally:
        watcher.kill() if watcher.poll() is None else None
        os.close(parent)
    output = b"".join(chunks).decode(errors="replace")

    assert output.startswith(watch.CLEAR + f"== workbook watch: {EXERCISE.folder} | 0/"), output
    assert output.count(watch.CLEAR) == 1, output
    assert "\033[31m" in output, "pytest's red, as on a terminal"


def report_of(*tests):
    return {"broken": {}, "tests": [
        {"exercise": folder, "task": task, "points": points, "outcome": outcome}
        for folder, task, points, outcome in tests
    ]}


def test_the_status_line_says_where_the_run_stands():
    """Tests and points of the exercise alone, a test this database skips left out, and the
    lowest task with a test that does not pass."""
    folder = EXERCISE.folder
    report = report_of((folder, 3, 1, "passed"), (folder, 2, 4, "failed"),
                       (folder, 4, 2, "error"), (folder, 1, 5, "skipped"),
                       ("99_other", 1, 9, "failed"))
    assert watch.status_line(EXERCISE, report) == (
        f"== workbook watch: {folder} | 1/3 tests passing | 1/7 points | first failing: "
        f"task 2, {EXERCISE.tasks[1]}")
    assert watch.status_line(EXERCISE, report_of((folder, 1, 2, "passed"))) == (
        f"== workbook watch: {folder} | 1/1 tests passing | 2/2 points | every test passes")
    broken = {**report, "broken": {folder: "admin.py does not import: SyntaxError, line 3"}}
    assert watch.status_line(EXERCISE, broken) == (
        f"== workbook watch: {folder} | admin.py does not import: SyntaxError, line 3: fix it "
        "first")
    assert watch.status_line(EXERCISE, None) == (
        f"== workbook watch: {folder} | the tests could not run (see below)")


@pytest.mark.parametrize("terminal", [True, False])
def test_a_run_is_shown_below_its_status_line_on_a_cleared_terminal(terminal):
    shown = io.StringIO()

    watch.show(EXERCISE, report_of((EXERCISE.folder, 1, 1, "failed")), "1 failed in 0.5s\n",
               terminal, stream=shown)

    first, rest = shown.getvalue().split(f"== workbook watch: {EXERCISE.folder} | 0/1", 1)
    assert first == ("\033[2J\033[H" if terminal else "\n"), "a log keeps every run"
    assert rest.endswith("first failing: task 1, " + EXERCISE.tasks[0] + "\n1 failed in 0.5s\n")


def test_a_run_started_ahead_is_kept_only_for_the_learners_files():
    """It has imported the exercise's models and tests, not its admin.py nor templates."""
    folder = EXERCISE.path
    assert watch.only_learner_files(EXERCISE, {str(folder / "admin.py")})
    assert not watch.only_learner_files(EXERCISE, {str(folder / "admin.py"),
                                                   str(folder / "models.py")})
    refund_desk = metadata.find("7")
    template = refund_desk.path / "templates/admin/refund_desk/order/mark_refunded.html"
    assert watch.only_learner_files(refund_desk, {str(template)})


def test_a_run_started_ahead_runs_the_admin_saved_after_it_started(copy):
    """The run waits, after the collection, for go(); the admin.py saved meanwhile is the one
    tested. cancel() ends a run unrun."""
    admin = copy / "exercises" / EXERCISE.folder / "admin.py"
    stub = admin.read_text()
    script = (
        "import sys, tempfile, time; from workbook import metadata, watch; "
        "exercise = metadata.exercises()[0]; folder = tempfile.mkdtemp(); "
        "watch.start_run(exercise, folder).cancel(); "
        "run = watch.start_run(exercise, folder); time.sleep(3); "
        "open(sys.argv[1], 'w').write(open(sys.argv[2]).read()); started = time.monotonic(); "
        "print('exit', run.go(), 'after', time.monotonic() - started); "
        "print(open(folder + '/output.txt').read())"
    )
    try:
        done = subprocess.run(
            [sys.executable, "-c", script, str(admin),
             str(copy / "solutions" / EXERCISE.folder / "admin.py")],
            cwd=copy, env=_env(), capture_output=True, text=True, timeout=180)
    finally:
        admin.write_text(stub)

    assert done.returncode == 0, done.stdout + done.stderr
    assert "exit 0" in done.stdout and RESULT.search(done.stdout).group(2) == "passed", (
        done.stdout + done.stderr)
    # The time it prints is the run's, from the save on: not the 3 s it waited for it.
    after = float(re.search(r"after ([\d.]+)", done.stdout).group(1))
    printed = float(re.search(r"passed in ([\d.]+)s", done.stdout).group(1))
    assert printed <= after + 0.01, done.stdout


HALVES = """\
import json, re, sys, tempfile
from workbook import halves, metadata, watch

second = halves._Second.pytest_runtestloop
def marked(self, session):  # the fork's half: what it ran, for the test
    open(sys.argv[2], "a").write(" ".join(i.nodeid for i in session.items[self.cut:]) + "\\n")
    return second(self, session)
halves._Second.pytest_runtestloop = marked

runs = {}
for split in (False, True):
    folder = tempfile.mkdtemp()
    report, output = watch._files(folder)
    code = watch.Ahead(metadata.find(sys.argv[1]), (), report=report, output=output,
                       halves=split).go()
    tests = json.load(open(report))["tests"]
    runs[split] = [code, re.sub(r" in [0-9.]+s", "", open(output).read()),
                   sorted([t["nodeid"], t["outcome"], t["message"]] for t in tests)]
print(json.dumps(runs))
"""


@pytest.mark.parametrize(("number", "shown"), [("1", "for the same reason"), ("7", "skipped")])
def test_a_watched_run_on_two_cores_shows_what_one_process_shows(copy, tmp_path, number,
                                                                  shown):
    """Split in two forked halves, the run of a stub (01: one failure grouped across both
    halves; 07: tests skipped on SQLite too) prints the same output, writes the same report
    and exits as one process does; the fork ran the second half."""
    exercise = metadata.find(number)
    ran = tmp_path / "second-half.txt"
    done = subprocess.run([sys.executable, "-c", HALVES, exercise.folder, str(ran)], cwd=copy,
                          env=_env(), capture_output=True, text=True, timeout=300)

    assert done.returncode == 0, done.stdout + done.stderr
    runs = json.loads(done.stdout)
    one, two = runs["false"], runs["true"]
    assert two[0] == one[0] == 1
    assert shown in one[1], one[1]
    assert two[1] == one[1]
    assert two[2] == one[2]
    [second] = ran.read_text().splitlines()
    assert len(second.split()) == len(one[2]) // 2


def test_the_loop_benchmark_has_a_row_per_exercise_asked(tmp_path):
    """A smoke run of `workbook bench --loop` (one run of each, one save) on the first and the
    last exercise: the table's rows, never its timings."""
    table = tmp_path / "loop.md"
    chosen = [metadata.exercises()[0], metadata.exercises()[-1]]
    done = subprocess.run(
        [sys.executable, "-c", CONSOLE_SCRIPT, "bench", "--loop", "--runs", "1", "--saves",
         "1", "--exercises", *(str(e.number) for e in chosen), "--markdown", str(table)],
        cwd=metadata.ROOT, env=_env(), capture_output=True, text=True, timeout=600,
    )

    assert done.returncode == 0, done.stdout + done.stderr
    text = table.read_text()
    rows = re.findall(r"^\| (\d\d_\w+) \| [\d.]+ \| [\d.]+× \| [\d.]+ \| [\d.]+× \| .+ \|$",
                      text, re.MULTILINE)
    assert rows == [e.folder for e in chosen], text
    assert "answers fail" not in text, text
    assert re.search(r"`workbook watch 1`: save → result line on screen, median of 1 saves",
                     text), text
    # The minimal suite it compares with is a real pytest-django suite that passes.
    minimal = loopbench.write_minimal_suite(tmp_path / "minimal")
    assert loopbench.cold_run(minimal, [])[1] == 0


def test_a_warm_run_copies_the_test_database_the_first_run_built(tmp_path):
    """With $WORKBOOK_DB_IMAGES (watch and the mutation check set it), the first run saves the
    database Django built and the next copies it in: the whole suite, its query counts
    included, passes on the copy, and the image is not built again."""
    images = tmp_path / "images"
    command = [sys.executable, "-m", "pytest", f"exercises/{EXERCISE.folder}", "--solutions",
               "-q", "-p", "no:cacheprovider"]
    env = {**_env(), dbimage.VARIABLE: str(images)}

    first = subprocess.run(command, cwd=metadata.ROOT, env=env, capture_output=True, text=True)
    assert first.returncode == 0, first.stdout + first.stderr
    [image] = images.iterdir()
    built = image.stat().st_ino
    again = subprocess.run(command, cwd=metadata.ROOT, env=env, capture_output=True, text=True)

    assert again.returncode == 0, again.stdout + again.stderr
    assert RESULT.search(again.stdout).group() == RESULT.search(first.stdout).group()
    assert [p.name for p in images.iterdir()] == [image.name]
    assert image.stat().st_ino == built, "the second run built and saved the database again"


def test_a_folder_of_images_that_cannot_be_written_leaves_the_run_as_django_builds_it(
        tmp_path):
    """An image that cannot be saved (its folder's parent is a file here; a full disk
    elsewhere) costs the run nothing but the copy: it passes, on the database Django built."""
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", f"exercises/{EXERCISE.folder}", "--solutions", "-q",
         "-p", "no:cacheprovider", "-k", "offered"],
        cwd=metadata.ROOT, env={**_env(), dbimage.VARIABLE: str(blocked / "images")},
        capture_output=True, text=True)

    assert done.returncode == 0, done.stdout + done.stderr
    assert RESULT.search(done.stdout).group(2) == "passed", done.stdout


def test_the_image_of_another_schema_is_not_used():
    """A model changed since an image was saved (a column that may now be NULL) names
    another image: the old one is never copied in."""
    from django.apps import apps
    from django.db import connection

    field = apps.get_model(EXERCISE.label, "Article")._meta.get_field("title")
    before = dbimage.digest(connection)
    field.null = not field.null
    try:
        changed = dbimage.digest(connection)
    finally:
        field.null = not field.null

    assert changed != before
    assert dbimage.digest(connection) == before
