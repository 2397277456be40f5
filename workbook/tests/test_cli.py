"""The learner's command line, used as a learner types it: `python -m workbook ...`.

Commands that change files or git run in a fresh clone of this repository, never here.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

import pytest

from workbook import cli, learner, metadata

STUB = "exercises/01_basic_action/admin.py"


# What the `workbook` console script runs. (`python -m workbook` in a fresh clone would first
# build that clone its own .venv, which its own test does not need to repeat.)
CONSOLE_SCRIPT = "import sys; from workbook.cli import main; sys.exit(main(sys.argv[1:]))"


def workbook(*args, cwd=metadata.ROOT):
    env = {key: value for key, value in os.environ.items() if key != "WORKBOOK_SOLUTIONS"}
    return subprocess.run(
        [sys.executable, "-c", CONSOLE_SCRIPT, *args], cwd=cwd, env=env, capture_output=True,
        text=True,
    )


def git(repo, *args):
    return subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


@pytest.fixture
def clone(tmp_path):
    """A fresh clone of this workbook, with a learner's identity for commits."""
    repo = tmp_path / "workbook"
    subprocess.run(["git", "clone", "-q", str(metadata.ROOT), str(repo)], check=True)
    git(repo, "config", "user.email", "learner@example.com")
    git(repo, "config", "user.name", "Learner")
    return repo


def test_every_command_has_help_and_a_handler():
    parser = cli.build_parser()
    commands = parser._subparsers._group_actions[0].choices
    assert set(commands) == set(cli.HANDLERS)
    for name, handler in cli.HANDLERS.items():
        assert handler.__doc__, f"`workbook {name}` has no help text"
        assert workbook(name, "--help").returncode == 0
    assert workbook("--help").returncode == 0


def test_an_unknown_exercise_is_one_line_listing_the_valid_ones():
    done = workbook("hint", "9")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert "no exercise '9'; choose one of: 1 (01_basic_action)" in done.stderr


def test_the_board_shows_every_exercise_and_the_next_step():
    done = workbook()
    assert done.returncode == 0, done.stderr
    for exercise in metadata.exercises():
        assert exercise.folder in done.stdout
    assert "Next: exercise 01_basic_action, task 1: Publish the selected articles" in done.stdout
    assert f"edit   {STUB}" in done.stdout


def test_test_runs_one_exercise_by_number_or_name():
    mine = workbook("test", "1")
    answer = workbook("test", "01_basic_action", "--solutions")
    assert mine.returncode == 1 and "30 failed" in mine.stdout
    assert answer.returncode == 0 and "30 passed" in answer.stdout


def test_hints_come_one_more_each_time_and_are_remembered(tmp_path, monkeypatch):
    monkeypatch.setattr(learner, "STATE_DIR", tmp_path)
    monkeypatch.setattr(learner, "STATE", tmp_path / "state.json")
    exercise = metadata.find("1")
    total = len(learner.hints(exercise))

    first, second = learner.next_hint(exercise), learner.next_hint(exercise)

    assert first[0].startswith(f"Hint 1 of {total}, task 1")
    assert second[0].startswith(f"Hint 2 of {total}, task 1")
    assert json.loads((tmp_path / "state.json").read_text()) == {"hints": {exercise.folder: 2}}
    for _ in range(total - 2):
        learner.next_hint(exercise)
    assert "seen all" in learner.next_hint(exercise)[0]


def test_every_task_has_hints():
    for exercise in metadata.exercises():
        tasks = {task for task, _, _ in learner.hints(exercise)}
        assert tasks == set(range(1, len(exercise.tasks) + 1)), exercise.folder


def test_diff_shows_your_file_against_the_answer(clone):
    done = workbook("diff", "1", cwd=clone)
    assert f"--- {STUB} (yours)" in done.stdout
    assert "+++ solutions/01_basic_action/admin.py (answer)" in done.stdout
    assert "-    actions = []" in done.stdout
    # Then what to look for in the answer, which the lesson keeps to itself.
    review = (clone / "solutions/01_basic_action/review.md").read_text().strip()
    assert done.stdout.rstrip().endswith(review)
    assert "Where the rows already in the target state" not in (
        clone / "lessons/01_basic_action.md"
    ).read_text()

    shutil.copy(clone / "solutions/01_basic_action/admin.py", clone / STUB)
    assert "match the answer" in workbook("diff", "1", cwd=clone).stdout

    # A learner who removed solutions/ to stay honest gets one line, not a traceback.
    shutil.rmtree(clone / "solutions")
    gone = workbook("diff", "1", cwd=clone)
    assert gone.returncode == 2 and "Traceback" not in gone.stderr
    assert "solutions/01_basic_action/admin.py is missing" in gone.stderr


def test_reset_restores_the_stub_and_keeps_your_version(clone):
    pristine = (clone / STUB).read_text()
    (clone / STUB).write_text(pristine + "# my work\n")
    git(clone, "commit", "-qam", "my work")  # even once committed, the stub comes back

    done = workbook("reset", "1", cwd=clone)

    assert done.returncode == 0, done.stderr
    assert (clone / STUB).read_text() == pristine
    backups = list((clone / ".workbook" / "backups" / "01_basic_action").rglob("admin.py"))
    assert len(backups) == 1 and backups[0].read_text().endswith("# my work\n")
    assert str(backups[0].relative_to(clone)) in done.stdout
    assert "already the original stub" in workbook("reset", "1", cwd=clone).stdout


def test_solutions_branch_leaves_your_branch_index_and_files_alone(clone):
    (clone / "exercises/02_export/admin.py").write_text("# half done\n")
    (clone / "notes.txt").write_text("mine\n")
    git(clone, "add", "notes.txt")
    head, status = git(clone, "rev-parse", "HEAD"), git(clone, "status", "--porcelain")

    created = workbook("solutions-branch", cwd=clone)
    again = workbook("solutions-branch", cwd=clone)

    assert "created" in created.stdout and "git diff solutions -- exercises/" in created.stdout
    assert "already up to date" in again.stdout
    assert git(clone, "rev-parse", "HEAD") == head
    assert git(clone, "status", "--porcelain") == status
    for path in (STUB, "exercises/03_confirmation/templates/admin/confirmation/article/"
                 "delete_with_confirmation.html"):
        answer = path.replace("exercises/", "solutions/", 1)
        assert git(clone, "show", f"solutions:{path}") == (clone / answer).read_text().strip()

    git(clone, "commit", "-qm", "more work")
    updated = workbook("solutions-branch", cwd=clone)
    assert "updated" in updated.stdout
    assert git(clone, "merge-base", "--is-ancestor", "HEAD", "solutions") == ""


def test_plain_pytest_passes_on_the_solutions_branch(clone, tmp_path):
    workbook("solutions-branch", cwd=clone)
    tree = tmp_path / "answers"
    git(clone, "worktree", "add", "-q", str(tree), "solutions")
    env = {key: value for key, value in os.environ.items() if key != "WORKBOOK_SOLUTIONS"}

    done = subprocess.run(
        [sys.executable, "-m", "pytest", "exercises/", "-q", "-p", "no:cacheprovider"],
        cwd=tree, env=env, capture_output=True, text=True,
    )

    assert done.returncode == 0, done.stdout[-2000:]


def test_git_commands_outside_a_checkout_say_so(tmp_path):
    copy = tmp_path / "no-git"
    shutil.copytree(metadata.ROOT, copy, ignore=shutil.ignore_patterns(".git", ".venv"))

    done = workbook("solutions-branch", cwd=copy)

    assert done.returncode == 2
    assert "is not a git checkout of the workbook" in done.stderr


def test_grade_writes_exercism_results_and_junit(tmp_path):
    results, junit = tmp_path / "results.json", tmp_path / "junit.xml"

    done = workbook("grade", "--json", str(results), "--junit", str(junit))

    assert done.returncode == 0, done.stderr
    graded = json.loads(results.read_text())
    assert graded["version"] == 3 and graded["status"] == "fail"
    assert graded["max_points"] == sum(e.points for e in metadata.exercises())
    first = graded["tests"][0]
    assert set(first) >= {"name", "status", "message", "task_id", "points", "max_points"}
    assert first["status"] == "fail" and first["message"]
    suites = ET.parse(junit).getroot().findall("testsuite")
    assert [s.get("name") for s in suites] == [e.folder for e in metadata.exercises()]
    assert "total" in done.stdout and "0.0%" in done.stdout


def test_watch_runs_again_when_a_file_is_saved(clone):
    env = {key: value for key, value in os.environ.items() if key != "WORKBOOK_SOLUTIONS"}
    watcher = subprocess.Popen(
        [sys.executable, "-c", CONSOLE_SCRIPT, "watch", "1", "--max-runs", "2"],
        cwd=clone, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    lines = []
    for line in watcher.stdout:
        lines.append(line)
        if "waiting for you to save" in line:
            break
    time.sleep(0.6)  # a new modification time, even on coarse clocks
    (clone / STUB).write_text((clone / STUB).read_text() + "\n")
    output = "".join(lines) + watcher.stdout.read()

    assert watcher.wait(timeout=60) == 0
    assert output.count("== workbook watch: 01_basic_action") == 2
    # Both runs fail every test of the untouched stub.
    runs = re.findall(r"^(\d+) failed", output, re.MULTILINE)
    assert len(runs) == 2 and runs[0] == runs[1] != "0", output


def test_the_benchmark_runs_and_counts_queries_exactly(tmp_path):
    """A smoke run of `workbook bench`: its tables and query counts, never its timings."""
    table = tmp_path / "bench.md"
    done = workbook("bench", "--rows", "300", "--runs", "1", "--only", "reference",
                    "--only", "seed", "--only", "raw", "--only", "make_published",
                    "--markdown", str(table))

    assert done.returncode == 0, done.stdout + done.stderr
    text = table.read_text()
    assert "| reference | 300 |" in text and "| 5 |" in text
    assert "| 305 |" in text  # the seed's export: one query per row, plus five
    assert "| make_published | 300 |" in text
    assert "Targets:" in text and "export ≥ 25× seed" in text
