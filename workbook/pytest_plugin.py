"""The workbook's pytest plugin: the --solutions switch, tasks and points, and the summary.

Loaded by the root conftest.py. Graded tests are the tests under exercises/<folder>/; each is
marked @pytest.mark.task(N, points=P).
"""

import json
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest

from . import metadata, switch


@dataclass
class Result:
    nodeid: str
    exercise: str
    task: int | None
    points: int
    outcome: str  # passed, failed, error or skipped
    message: str


_results_key = pytest.StashKey[dict]()


def pytest_addoption(parser):
    group = parser.getgroup("workbook")
    group.addoption(
        "--solutions",
        action="store_true",
        help="run the tests against the reference answers in solutions/ instead of your code",
    )
    group.addoption(
        "--workbook-report",
        metavar="FILE",
        help="write every graded test's exercise, task, points and outcome to FILE as JSON",
    )


@pytest.hookimpl(wrapper=True)
def pytest_load_initial_conftests(early_config, parser, args):
    """Turn --solutions on before pytest-django may set Django up (it does so in this hook
    when DJANGO_SETTINGS_MODULE is in the environment), so the right admin.py is imported."""
    if early_config.known_args_namespace.solutions:
        os.environ[switch.ENV_VAR] = "1"
    return (yield)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    if config.getoption("solutions"):
        os.environ[switch.ENV_VAR] = "1"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "workbook.settings")
    # Load the settings now, so that pytest-django's own pytest_configure sets Django up.
    from django.conf import settings

    settings.INSTALLED_APPS  # noqa: B018
    _refuse_a_mixed_up_mode()
    if switch.solutions_mode():
        for category in ("RemovedInNextVersionWarning", "RemovedInDjango2028Warning"):
            config.addinivalue_line(
                "filterwarnings", f"error::django.utils.deprecation.{category}"
            )
    config.stash[_results_key] = {}


def _refuse_a_mixed_up_mode():
    """Stop, rather than test the stubs while saying "reference answers" (or the reverse)."""
    for exercise in metadata.exercises():
        module = sys.modules.get(f"{exercise.module}.admin")
        if module is None:
            continue
        from_solutions = module.__file__.startswith(str(metadata.SOLUTIONS_DIR))
        if from_solutions != switch.solutions_mode():
            raise pytest.UsageError(
                f"Django loaded {module.__file__} before the workbook's pytest plugin could "
                "choose between your code and the answers. Run pytest from the workbook's "
                ".venv (python3 -m workbook sets it up), or set WORKBOOK_SOLUTIONS=1 yourself."
            )


def pytest_report_header(config):
    if switch.solutions_mode():
        return "workbook: testing the reference answers in solutions/"
    return "workbook: testing your code in exercises/ (add --solutions for the reference answers)"


def exercise_of(item_path):
    """The exercise a test file belongs to, or None for the workbook's own tests."""
    try:
        relative = Path(item_path).resolve().relative_to(metadata.EXERCISES_DIR)
    except ValueError:
        return None
    return metadata.find(relative.parts[0]) if len(relative.parts) > 1 else None


def pytest_collection_modifyitems(config, items):
    for item in items:
        exercise = exercise_of(item.path)
        if exercise is None:
            continue
        marker = item.get_closest_marker("task")
        if marker is None or not marker.args:
            raise pytest.UsageError(
                f"{item.nodeid} is a graded test without @pytest.mark.task(N, points=P)."
            )


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item):
    """An exercise whose admin.py does not import fails its own tests, and no others."""
    exercise = exercise_of(item.path)
    if exercise is None:
        return
    from .apps import broken_admins

    if exercise.label in broken_admins:
        pytest.fail(
            f"exercises/{exercise.folder}/admin.py could not be imported, so this test "
            f"cannot run. Fix this error first:\n\n{broken_admins[exercise.label]}",
            pytrace=False,
        )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    exercise = exercise_of(item.path)
    if exercise is None:
        return report
    marker = item.get_closest_marker("task")
    task = marker.args[0]
    if report.failed and hasattr(report.longrepr, "addsection"):
        title = exercise.tasks[task - 1] if 0 < task <= len(exercise.tasks) else "?"
        report.longrepr.addsection(
            f"Task {task}: {title}",
            f"Read task {task} in {exercise.lesson}; stuck? "
            f"See '## Task {task}' in {exercise.hints}.",
        )
    results = item.config.stash[_results_key]
    if report.when == "call" or report.outcome != "passed":
        outcome = report.outcome
        if report.when != "call" and report.outcome == "failed":
            outcome = "error"
        previous = results.get(item.nodeid)
        if previous is None or previous.outcome == "passed":
            results[item.nodeid] = Result(
                nodeid=item.nodeid,
                exercise=exercise.folder,
                task=task,
                points=marker.kwargs.get("points", 1),
                outcome=outcome,
                message=_first_line(report),
            )
    return report


def _first_line(report):
    if report.passed:
        return ""
    text = getattr(report.longrepr, "reprcrash", None)
    text = text.message if text is not None else str(report.longrepr)
    return text.removeprefix("Failed: ").strip().splitlines()[0] if text.strip() else ""


def pytest_sessionfinish(session, exitstatus):
    config = session.config
    if not switch.solutions_mode():
        leaked = switch.modules_loaded_from_solutions()
        if leaked:
            config.stash[_results_key]["__leak__"] = leaked
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
    path = config.getoption("workbook_report")
    if path:
        results = config.stash[_results_key]
        payload = {
            "solutions": switch.solutions_mode(),
            "modules_from_solutions": results.get("__leak__", []),
            "tests": [asdict(r) for key, r in results.items() if key != "__leak__"],
        }
        Path(path).write_text(json.dumps(payload, indent=2))


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    results = config.stash.get(_results_key, {})
    leaked = results.get("__leak__")
    if leaked:
        terminalreporter.write_line(
            "Learner mode loaded reference answers: " + ", ".join(leaked), red=True
        )
    graded = [r for key, r in results.items() if key != "__leak__"]
    if not graded:
        return
    mode = "reference answers" if switch.solutions_mode() else "your code"
    terminalreporter.section(f"workbook: {mode}")
    for exercise in metadata.exercises():
        mine = [r for r in graded if r.exercise == exercise.folder]
        if not mine:
            continue
        passed = [r for r in mine if r.outcome == "passed"]
        earned = sum(r.points for r in passed)
        total = sum(r.points for r in mine)
        terminalreporter.write_line(
            f"{exercise.folder:<20} {len(passed):>3}/{len(mine):<3} tests passing"
            f"   {earned:>3}/{total:<3} points",
            green=len(passed) == len(mine),
        )
