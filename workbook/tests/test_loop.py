"""The learner's loop: `workbook watch` (a warm process, a fork per run) and its benchmark.

Nothing here asserts a timing: `python -m workbook bench --loop` measures them.
"""

import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

from workbook import loopbench, metadata

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


def test_the_loop_benchmark_has_a_row_per_exercise(tmp_path):
    """A smoke run of `workbook bench --loop` (one run of each, one save): the table's rows,
    never its timings."""
    table = tmp_path / "loop.md"
    done = subprocess.run(
        [sys.executable, "-c", CONSOLE_SCRIPT, "bench", "--loop", "--runs", "1", "--saves",
         "1", "--markdown", str(table)],
        cwd=metadata.ROOT, env=_env(), capture_output=True, text=True, timeout=600,
    )

    assert done.returncode == 0, done.stdout + done.stderr
    text = table.read_text()
    rows = re.findall(r"^\| (\d\d_\w+) \| [\d.]+ \| [\d.]+× \| [\d.]+ \| [\d.]+× \| .+ \|$",
                      text, re.MULTILINE)
    assert rows == [e.folder for e in metadata.exercises()], text
    assert "answers fail" not in text, text
    assert re.search(r"`workbook watch 1`: save → result line on screen, median of 1 saves",
                     text), text
    # The minimal suite it compares with is a real pytest-django suite that passes.
    minimal = loopbench.write_minimal_suite(tmp_path / "minimal")
    assert loopbench.cold_run(minimal, [])[1] == 0
