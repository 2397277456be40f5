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
    """Every check, as CI runs it: the stubs are the recorded ones. The four run side by side
    (each waits on its processes, which share the cores); each is shown when it has ended."""
    tools.ensure_debian_packages()
    tools.ensure_actionlint()
    print("the four checks run side by side; each is shown, in order, when it has ended",
          flush=True)
    mutants = [sys.executable, "-m", "workbook", "mutants", *(["--postgresql"] if postgresql
                                                             else [])]
    with ThreadPoolExecutor(4) as pool:
        stubs = pool.submit(progress.run_suites)
        shown = {"answers": [], "notebooks": []}  # their output, printed once they end
        answers = pool.submit(check_answers, metadata.ROOT, postgresql, shown["answers"].append)
        notebooks = pool.submit(check_notebooks, metadata.ROOT, (
            ": re-run the notebooks with `python -m workbook notebooks --execute` if the change "
            "in their output is intended"), shown["notebooks"].append)
        mutation = pool.submit(captured, mutants)
        _, stubs_report, output = stubs.result()
        failures = stubs_step(stubs_report, output, postgresql)
        print(f"== 2/4: {ANSWERS}", flush=True)
        answers_report, problems = answers.result()
        print("\n".join(shown["answers"]), flush=True)
        failures += problems
        if answers_report is not None and stubs_report is not None:
            only = ({t["nodeid"] for t in stubs_report["tests"]}
                    ^ {t["nodeid"] for t in answers_report["tests"]})
            failures += [f"collected in one mode only: {n}" for n in sorted(only)]
        print(f"== 3/4: {NOTEBOOKS}", flush=True)
        failures += notebooks.result()
        print("\n".join(shown["notebooks"]), flush=True)
        print("== 4/4: the mutation check: each suite fails >= 90 % of the wrong answers",
              flush=True)
        if postgresql:
            # The generated wrong answers compare suites with code, the same on any database:
            # SQLite runs them. Here run those only row locks tell apart, and all must die.
            print("on PostgreSQL: only the wrong answers that row locks tell apart "
                  "(mutants.toml's database = \"postgresql\"); the rest run on SQLite")
        code, output = mutation.result()
        print(output.rstrip(), flush=True)
    if code != 0:
        failures.append(
            "the mutation check failed: a suite lets too many wrong answers pass, or "
            "mutants.toml is out of date (see the survivors and problems above)"
        )

    return summary(answers_report, failures, postgresql, "", (
        f"On {braced(on)}: all {{passed}} graded tests fail on the stubs and pass on the reference "
        "answers" + (" ({elsewhere} more need PostgreSQL and were skipped)"
                     if not postgresql else "")
        + "; learner mode never imported solutions/; the notebooks match their outputs"
        + ("." if postgresql else "; every suite fails at least 90 % of the wrong answers.")))


def stubs_step(stubs, output, postgresql):
    """Step 1's problems, from learner mode's report and output on the untouched stubs."""
    print("== 1/4: the untouched stubs (learner mode): every graded test must fail", flush=True)
    print(output.rstrip().splitlines()[-1] if output.strip() else "(no output)", flush=True)
    failures = []
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
    return failures


def captured(command, env=None, cwd=None):
    """(exit status, output) of COMMAND run in the workbook at CWD (this one by default)."""
    done = subprocess.run(command, cwd=cwd or metadata.ROOT, env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return done.returncode, done.stdout


# The workbook's own tests whose outcome can depend on the database: the others (grading a
# class, the watch loop, the mutation check's machinery, bootstrap, spoilers, the workflow)
# run on SQLite whatever DATABASE_URL says, or touch no database, so SQLite's run proves them.
ON_EVERY_DATABASE = ("workbook/tests/test_cli.py", "workbook/tests/test_demo.py",
                     "workbook/tests/test_workbook.py", "workbook/tests/test_failures.py")
# The graded suites, the lessons' and the browser's: one pytest process, with the workbook's
# own tests but those of BESIDE, which run in processes of their own beside it, a group each
# (groups of about the same CPU time: test_class mostly waits for its time limits).
GRADED = ("exercises", "lessons", "workbook/browser_tests")
BESIDE = {
    "sqlite": (("workbook/tests/test_cli.py",),
               ("workbook/tests/test_mutants.py", "workbook/tests/test_loop.py",
                "workbook/tests/test_workbook.py"),
               ("workbook/tests/test_class.py", "workbook/tests/test_workflow.py")),
    "postgresql": (ON_EVERY_DATABASE[:1], ON_EVERY_DATABASE[1:]),
}


def check_answers(root, postgresql=False, show=None):
    """Every suite with --solutions in the workbook at ROOT: (its report, the problems). On
    PostgreSQL the workbook's own tests are those that can tell the two databases apart.

    The graded suites (shown as they run, or given to SHOW when they end) with some of the
    workbook's own tests, and beside them the groups of BESIDE, a pytest process each (shown,
    or given to SHOW, when they end). Their processes share the cores."""
    live, show = show is None, show or print
    beside = BESIDE["postgresql" if postgresql else "sqlite"]
    first = GRADED if postgresql else (*GRADED, *(
        f"workbook/tests/{p.name}" for p in sorted((root / "workbook" / "tests").glob("test_*.py"))
        if not any(f"workbook/tests/{p.name}" in group for group in beside)))
    with ThreadPoolExecutor(len(beside)) as pool:
        own = [pool.submit(progress.run_suites, *group, solutions=True, quiet=True, cwd=root)
               for group in beside]
        code, answers, output = progress.run_suites(*first, solutions=True, quiet=not live,
                                                    cwd=root)
        own = [job.result() for job in own]
    if not live:
        show(output.rstrip())
    problems = [] if answers is not None and code == 0 else [f"pytest --solutions exited {code}"]
    for group, (own_code, _, own_output) in zip(beside, own):
        show(f"the workbook's own tests, run beside them ({' '.join(group)}):")
        show(own_output.rstrip())
        if own_code != 0:
            problems.append(f"pytest --solutions exited {own_code} on {' '.join(group)}")
    sys.stdout.flush()
    if answers is not None:
        problems += _problems_with_metadata(answers)
    return answers, problems


def check_notebooks(root, advice, show=None):
    """nbval on the workbook at ROOT, its kernels importing that workbook: the problems
    (its output shown as it runs, or given to SHOW when it ends)."""
    env = None if root == metadata.ROOT else {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(root), *filter(None, [os.environ.get("PYTHONPATH")])])}
    command = [sys.executable, "-m", "pytest", *nbval()]
    if show is None:
        code = subprocess.call(command, cwd=root, env=env)
    else:
        code, output = captured(command, env, root)
        show(output.rstrip())
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
