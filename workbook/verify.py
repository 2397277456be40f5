"""`workbook verify`: prove the workbook's invariants, as CI does, or what a learner's clone can.

On an untouched clone it proves them all: the stubs fail every graded test, the reference
answers pass them, the lessons, the workbook's own tests and the notebooks pass, and each
suite fails the wrong answers. On a clone where a learner has edited exercises the stubs
check and the mutation check, which are about the untouched stubs, are skipped (it says so in
one line): the rest runs on a copy of the workbook with the original stubs, so that the
learner's work neither fails the workbook's own tests nor is ever taken for a stub.
"""

import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from . import databases, gitrepo, metadata, progress, tools
from .notebook import nbval

# What the copy for an edited clone leaves out: history, environments, caches, your state.
NOT_COPIED = shutil.ignore_patterns(
    ".git", ".venv", "__pycache__", ".pytest_cache", ".workbook", "*.egg-info", "db.sqlite3*",
    "node_modules", ".ipynb_checkpoints",
)
ANSWERS = ("the reference answers (--solutions), in Chromium too, and the workbook's own "
           "checks")
NOTEBOOKS = "the notebooks, against their committed outputs (nbval)"


def main(args):
    """Run the checks this clone allows; 0 when all of them hold, 1 otherwise."""
    url = databases.use_database(args.database_url, needs_createdb=True)
    postgresql = databases.is_postgresql(url)
    on = f"PostgreSQL, {databases.shown(url)}" if postgresql else "SQLite"
    print(f"workbook verify on {on}", flush=True)
    edited = edited_exercises()
    if edited:
        print(notice(edited), flush=True)
    if args.dry_run:
        steps = [ANSWERS, NOTEBOOKS] if edited else [
            "the untouched stubs", ANSWERS, NOTEBOOKS, "the mutation check"]
        print("\n".join(f"== {n}/{len(steps)}: {s}" for n, s in enumerate(steps, 1)))
        print("(--dry-run: nothing was run)")
        return 0
    if edited:
        return edited_clone(on, postgresql)
    return untouched_clone(on, postgresql)


def edited_exercises():
    """The numbers of the exercises whose learner files are not their recorded stubs."""
    folders = {path.split("/")[1] for path in gitrepo.edited_stubs()}
    return [e.number for e in metadata.exercises() if e.folder in folders]


def notice(edited):
    """The one line that tells a learner what verify does on their clone, and why."""
    numbers = ", ".join(f"{n:02d}" for n in edited)
    return (f"verify: you have edited exercise{'s' * (len(edited) > 1)} {numbers}, so the stubs "
            "check and the mutation check (CI's: they need the untouched stubs) are skipped; "
            "checking the reference answers, the lessons, the workbook's own tests and the "
            "notebooks on a copy with the original stubs (your files stay as they are)")


def edited_clone(on, postgresql):
    """Steps 2 and 3 on a copy with the original stubs: the learner's files, committed or
    not, would fail the workbook's own tests, which expect the stubs."""
    failures = []
    tools.ensure_debian_packages()
    tools.ensure_actionlint()
    with tempfile.TemporaryDirectory(prefix="workbook-verify-") as tmp:
        copy = pristine_copy(Path(tmp) / "workbook")
        print(f"== 1/2: {ANSWERS}", flush=True)
        answers, problems = check_answers(copy, postgresql)
        failures += problems
        print(f"== 2/2: {NOTEBOOKS}", flush=True)
        failures += check_notebooks(copy, "")
    # Run on the original stubs: a failure here is the workbook's, not the learner's.
    return summary(answers, failures, postgresql, "in the workbook (not in your exercises)", (
        f"On {braced(on)}: all {{passed}} graded tests pass on the reference answers; the lessons, "
        "the workbook's own tests and the notebooks pass. Your exercises were not checked "
        "here: `workbook` shows where they stand."))


def braced(text):
    """TEXT as it reads once str.format() has filled in a template around it."""
    return text.replace("{", "{{").replace("}", "}}")


def summary(answers, failures, postgresql, where, success):
    """The closing lines: the problems and `verify: N passed, M failed`, or SUCCESS (with
    {passed} and {elsewhere} filled in); the exit status."""
    graded = len(answers["tests"]) if answers else 0
    elsewhere = sum(_not_on_this_database(t, postgresql) for t in (answers or {}).get("tests", []))
    if failures:
        print(f"\nworkbook verify found problems{' ' + where if where else ''}:")
        print("\n".join(f"  - {f}" for f in failures))
        print(f"verify: {graded - len(failures)} passed, {len(failures)} failed")
        return 1
    print("\n" + success.format(passed=graded - elsewhere, elsewhere=elsewhere))
    print(f"verify: {graded - elsewhere} passed, 0 failed")
    return 0


def pristine_copy(target):
    """A git repository at TARGET: this workbook as it is, each learner file replaced by its
    recorded stub (read from git's objects), committed so that tests can clone it."""
    shutil.copytree(metadata.ROOT, target, ignore=NOT_COPIED)
    for path in gitrepo.learner_paths():
        (target / path).write_bytes(gitrepo.pristine_stub(path))
    git = ["git", "-C", str(target), "-c", "user.name=workbook verify",
           "-c", "user.email=verify@workbook.invalid", "-c", "commit.gpgsign=false"]
    for command in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "The workbook"]):
        subprocess.run([*git, *command], check=True, capture_output=True)
    # Shared, not copied, and after the commit, so that git's clones of the copy lack them.
    for shared in (".venv", "workbook/node/node_modules"):
        if (metadata.ROOT / shared).exists():
            (target / shared).symlink_to(metadata.ROOT / shared)
    return target


def untouched_clone(on, postgresql):
    """Every check, as CI runs it: the stubs are the recorded ones."""
    failures = []
    print("== 1/4: the untouched stubs (learner mode): every graded test must fail", flush=True)
    code, stubs, output = progress.run_suites()
    print(output.rstrip().splitlines()[-1] if output.strip() else "(no output)")
    if stubs is None:
        failures.append("learner mode did not run:\n" + output)
    else:
        for result in stubs["tests"]:
            if _not_on_this_database(result, postgresql):
                continue
            if result["outcome"] != "failed":
                failures.append(f"stub: {result['nodeid']} {result['outcome']}, expected failed")
            elif not result["message"]:
                failures.append(f"stub: {result['nodeid']} failed without a message")
        if stubs["modules_from_solutions"]:
            failures.append(
                "learner mode imported reference answers: "
                + ", ".join(stubs["modules_from_solutions"])
            )
    if gitrepo.current_blobs() != gitrepo.stub_blobs():
        # Every learner file is its stub here: stubs.json lists files that are not.
        failures.append("workbook/stubs.json lists files that are not learner files: run "
                        "`python3 -m workbook stubs --update` and commit")

    print(f"== 2/4: {ANSWERS}", flush=True)
    tools.ensure_debian_packages()
    tools.ensure_actionlint()
    answers, problems = check_answers(metadata.ROOT, postgresql)
    failures += problems
    if answers is not None and stubs is not None:
        only = {t["nodeid"] for t in stubs["tests"]} ^ {t["nodeid"] for t in answers["tests"]}
        failures += [f"collected in one mode only: {n}" for n in sorted(only)]

    print(f"== 3/4: {NOTEBOOKS}", flush=True)
    failures += check_notebooks(
        metadata.ROOT, ": re-run the notebooks with `python -m workbook notebooks --execute` "
        "if the change in their output is intended")

    print("== 4/4: the mutation check: each suite fails >= 90 % of the wrong answers",
          flush=True)
    if postgresql:
        # The generated wrong answers compare suites with code, the same on any database:
        # SQLite runs them. Here run those only row locks tell apart, and all must die.
        print("on PostgreSQL: only the wrong answers that row locks tell apart "
              "(mutants.toml's database = \"postgresql\"); the rest run on SQLite", flush=True)
        code = subprocess.call([sys.executable, "-m", "workbook", "mutants", "--postgresql"],
                               cwd=metadata.ROOT)
    else:
        code = subprocess.call([sys.executable, "-m", "workbook", "mutants"], cwd=metadata.ROOT)
    if code != 0:
        failures.append(
            "the mutation check failed: a suite lets too many wrong answers pass, or "
            "mutants.toml is out of date (see the survivors and problems above)"
        )

    return summary(answers, failures, postgresql, "", (
        f"On {braced(on)}: all {{passed}} graded tests fail on the stubs and pass on the reference "
        "answers" + (" ({elsewhere} more need PostgreSQL and were skipped)"
                     if not postgresql else "")
        + "; learner mode never imported solutions/; the notebooks match their outputs"
        + ("." if postgresql else "; every suite fails at least 90 % of the wrong answers.")))


# The workbook's own tests whose outcome can depend on the database: the others (grading a
# class, the watch loop, the mutation check's machinery, bootstrap, spoilers, the workflow)
# run on SQLite whatever DATABASE_URL says, or touch no database, so SQLite's run proves them.
ON_EVERY_DATABASE = ("workbook/tests/test_cli.py", "workbook/tests/test_demo.py",
                     "workbook/tests/test_workbook.py", "workbook/tests/test_failures.py")
# The graded suites, the lessons' and the browser's: one pytest process, shown as it runs,
# with the workbook's own tests but these (about half of the time), run in another beside it.
GRADED = ("exercises", "lessons", "workbook/browser_tests")
BESIDE = ("workbook/tests/test_cli.py", "workbook/tests/test_loop.py",
          "workbook/tests/test_mutants.py", "workbook/tests/test_workbook.py")


def check_answers(root, postgresql=False):
    """Every suite with --solutions in the workbook at ROOT: (its report, the problems). On
    PostgreSQL the workbook's own tests are those that can tell the two databases apart.

    Two pytest processes side by side, one core each: the graded suites with some of the
    workbook's own tests (shown as they run), and the rest (shown when they end)."""
    if postgresql:
        first, second = GRADED, ON_EVERY_DATABASE
    else:
        first = (*GRADED, *(f"workbook/tests/{p.name}" for p in sorted(
            (root / "workbook" / "tests").glob("test_*.py"))
            if f"workbook/tests/{p.name}" not in BESIDE))
        second = BESIDE
    with ThreadPoolExecutor(1) as pool:
        own = pool.submit(progress.run_suites, *second, solutions=True, quiet=True, cwd=root)
        code, answers, _ = progress.run_suites(*first, solutions=True, quiet=False, cwd=root)
        own_code, _, own_output = own.result()
    print(f"the workbook's own tests, run beside them ({' '.join(second)}):")
    print(own_output.rstrip(), flush=True)
    problems = [] if answers is not None and code == 0 else [f"pytest --solutions exited {code}"]
    if own_code != 0:
        problems.append(f"pytest --solutions exited {own_code} on the workbook's own tests")
    if answers is not None:
        problems += _problems_with_metadata(answers)
    return answers, problems


def check_notebooks(root, advice):
    """nbval on the workbook at ROOT, its kernels importing that workbook: the problems."""
    env = None if root == metadata.ROOT else {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(root), *filter(None, [os.environ.get("PYTHONPATH")])])}
    code = subprocess.call([sys.executable, "-m", "pytest", *nbval()], cwd=root, env=env)
    return [f"nbval exited {code}{advice}"] if code != 0 else []


def _not_on_this_database(result, postgresql):
    """A test skipped on SQLite because it proves what only PostgreSQL has (row locks)."""
    return (not postgresql and result["outcome"] == "skipped"
            and metadata.POSTGRESQL_ONLY in result["message"])


def _problems_with_metadata(report):
    """Tasks and points in exercises.toml that the graded tests do not back up."""
    problems = []
    for exercise, mine in progress.by_exercise(report, skipped=True):
        tasks = {t["task"] for t in mine}
        expected_tasks = set(range(1, len(exercise.tasks) + 1))
        if tasks != expected_tasks:
            problems.append(
                f"{exercise.folder}: tests cover tasks {sorted(tasks)}, exercises.toml lists "
                f"{sorted(expected_tasks)}"
            )
        total = sum(t["points"] for t in mine)
        if total != exercise.points:
            problems.append(
                f"{exercise.folder}: the graded tests are worth {total} points, "
                f"exercises.toml says {exercise.points}"
            )
    return problems
