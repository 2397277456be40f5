"""The workbook's command line: where you stand, and the maintainers' proof that all is well.

    python -m workbook            your progress on every exercise, and what to do next
    python -m workbook verify     prove the invariants: stubs fail, answers pass, lessons match
    python -m workbook lessons    check the lessons' code against its sources (--sync rewrites)
    python -m workbook notebooks  check the notebooks' outputs with nbval (--execute re-runs them)
    python -m workbook bench      measure the CSV export through the admin (see --help)
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from . import lessons, metadata

ROOT = metadata.ROOT
NBVAL = ["-p", "nbval", "--nbval", "--nbval-current-env", "notebooks/"]


def run_pytest(*args, solutions=False, quiet=True):
    """Run pytest in a fresh process; return (exit code, report dict, captured output)."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        command = [sys.executable, "-m", "pytest", *args, f"--workbook-report={report}"]
        if solutions:
            command.append("--solutions")
        env = {**os.environ}
        env.pop("WORKBOOK_SOLUTIONS", None)
        done = subprocess.run(
            command, cwd=ROOT, env=env, text=True,
            capture_output=quiet,
        )
        data = json.loads(report.read_text()) if report.exists() else None
    return done.returncode, data, (done.stdout or "") + (done.stderr or "")


def _bar(done, total, width=20):
    filled = round(width * done / total) if total else 0
    return "[" + "#" * filled + "-" * (width - filled) + "]"


def board(_args):
    """Show every exercise's tests and points, and the next thing to do."""
    code, report, output = run_pytest("exercises", "-q", "-p", "no:cacheprovider")
    if report is None:
        print(output)
        print("workbook: the tests could not run; the output above says why.")
        return 2
    tests = report["tests"]
    print("Django admin actions workbook: your progress\n")
    next_step = None
    for exercise in metadata.exercises():
        mine = [t for t in tests if t["exercise"] == exercise.folder]
        passed = [t for t in mine if t["outcome"] == "passed"]
        points = sum(t["points"] for t in passed)
        print(
            f"  {exercise.folder:<20} {_bar(len(passed), len(mine))} "
            f"{len(passed):>2}/{len(mine):<2} tests  {points:>2}/{exercise.points:<2} points"
            f"  {exercise.title}"
        )
        failing = sorted(t["task"] for t in mine if t["outcome"] != "passed")
        if next_step is None and failing:
            next_step = (exercise, failing[0])
    print()
    if next_step is None:
        print("Every exercise passes. Well done!")
        return 0
    exercise, task = next_step
    activated = os.environ.get("VIRTUAL_ENV")
    pytest_cmd = "pytest" if activated else os.path.relpath(Path(sys.prefix) / "bin" / "pytest")
    print(f"Next: exercise {exercise.folder}, task {task}: {exercise.tasks[task - 1]}")
    print(f"  read   {exercise.lesson}  (## Task {task})")
    for name in exercise.learner_files:
        print(f"  edit   exercises/{exercise.folder}/{name}")
    print(f"  check  {pytest_cmd} exercises/{exercise.folder}")
    print(f"  stuck? {exercise.hints}  (## Task {task})")
    if not activated:
        print("\nTip: `source .venv/bin/activate` puts pytest and python from the workbook on your PATH.")
    return 0


def _problems_with_metadata(report):
    """Tasks and points in exercises.toml that the graded tests do not back up."""
    problems = []
    for exercise in metadata.exercises():
        mine = [t for t in report["tests"] if t["exercise"] == exercise.folder]
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


def verify(_args):
    """Stubs fail every graded test, answers pass them all, and the lessons match the code."""
    failures = []

    print("== 1/3: the untouched stubs (learner mode): every graded test must fail", flush=True)
    code, stubs, output = run_pytest("exercises", "-q", "-p", "no:cacheprovider")
    print(output.rstrip().splitlines()[-1] if output.strip() else "(no output)")
    if stubs is None:
        failures.append("learner mode did not run:\n" + output)
    else:
        for test in stubs["tests"]:
            if test["outcome"] != "failed":
                failures.append(f"stub: {test['nodeid']} {test['outcome']}, expected failed")
            elif not test["message"]:
                failures.append(f"stub: {test['nodeid']} failed without a message")
        if stubs["modules_from_solutions"]:
            failures.append(
                "learner mode imported reference answers: "
                + ", ".join(stubs["modules_from_solutions"])
            )

    print("== 2/3: the reference answers (--solutions) and the workbook's own checks", flush=True)
    code, answers, _ = run_pytest("exercises", "workbook/tests", solutions=True, quiet=False)
    if answers is None or code != 0:
        failures.append(f"pytest --solutions exited {code}")
    if answers is not None:
        failures += _problems_with_metadata(answers)
        if stubs is not None:
            only = {t["nodeid"] for t in stubs["tests"]} ^ {t["nodeid"] for t in answers["tests"]}
            failures += [f"collected in one mode only: {n}" for n in sorted(only)]

    print("== 3/3: the notebooks, against their committed outputs (nbval)", flush=True)
    code = subprocess.call([sys.executable, "-m", "pytest", *NBVAL], cwd=ROOT)
    if code != 0:
        failures.append(
            f"nbval exited {code}: re-run the notebooks with `python -m workbook notebooks "
            "--execute` if the change in their output is intended"
        )

    graded = len(answers["tests"]) if answers else 0
    if failures:
        print("\nworkbook verify found problems:")
        print("\n".join(f"  - {f}" for f in failures))
        print(f"verify: {graded - len(failures)} passed, {len(failures)} failed")
        return 1
    print(
        f"\nAll {graded} graded tests fail on the stubs and pass on the reference answers; "
        "learner mode never imported solutions/; the notebooks match their outputs."
    )
    print(f"verify: {graded} passed, 0 failed")
    return 0


def lessons_command(args):
    """Check that every Python block in lessons/ is the code it names (--sync rewrites them)."""
    problems = []
    for lesson in lessons.lessons():
        if args.sync and lessons.sync(lesson):
            print(f"updated {lesson.relative_to(ROOT)}")
        problems += lessons.check(lesson)
    print("\n".join(problems) or "Every lesson's code matches its source.")
    return 1 if problems else 0


def notebooks_command(args):
    """Check the notebooks' committed outputs with nbval; --execute re-runs and saves them."""
    if not args.execute:
        return subprocess.call([sys.executable, "-m", "pytest", *NBVAL], cwd=ROOT)
    import nbformat
    from nbclient import NotebookClient

    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        notebook = nbformat.read(path, as_version=4)
        # No timing metadata: re-running an unchanged notebook leaves the file unchanged.
        for cell in notebook.cells:
            cell.metadata.pop("execution", None)
        NotebookClient(
            notebook, record_timing=False, resources={"metadata": {"path": str(path.parent)}}
        ).execute()
        for cell in notebook.cells:
            if cell.cell_type == "code":
                cell.outputs = _merged_streams(cell.outputs)
        nbformat.write(notebook, path)
        print(f"executed {path.relative_to(ROOT)}")
    return 0


def _merged_streams(outputs):
    """Join consecutive prints to one stream: how the kernel split them is timing, not content."""
    merged = []
    for output in outputs:
        previous = merged[-1] if merged else None
        if (output.output_type == "stream" and previous is not None
                and previous.output_type == "stream" and previous.name == output.name):
            previous.text += output.text
        else:
            merged.append(output)
    return merged


def bench_command(args):
    """Measure the CSV export through the admin: rows/s, queries, memory (see bench --help)."""
    from . import bench

    return bench.main(args.rest)


def build_parser():
    parser = argparse.ArgumentParser(prog="workbook", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("verify", help=verify.__doc__)
    sync = commands.add_parser("lessons", help=lessons_command.__doc__)
    sync.add_argument("--sync", action="store_true", help="rewrite blocks from their sources")
    notebooks = commands.add_parser("notebooks", help=notebooks_command.__doc__)
    notebooks.add_argument("--execute", action="store_true", help="re-run and save outputs")
    # Its options are bench's own: parse_known_args hands them on untouched.
    commands.add_parser("bench", help=bench_command.__doc__, add_help=False)
    return parser


HANDLERS = {
    "verify": verify,
    "lessons": lessons_command,
    "notebooks": notebooks_command,
    "bench": bench_command,
}


def main(argv=None):
    parser = build_parser()
    args, args.rest = parser.parse_known_args(argv)
    if args.rest and args.command != "bench":
        parser.error(f"unrecognized arguments: {' '.join(args.rest)}")
    return HANDLERS.get(args.command, board)(args)
