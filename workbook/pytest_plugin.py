"""The workbook's pytest plugin: the --solutions switch, tasks and points, and the summary.

Loaded by the root conftest.py. Graded tests are the tests under exercises/<folder>/; each is
marked @pytest.mark.task(N, points=P).
"""

import ast
import functools
import inspect
import json
import os
import re
import sys
import textwrap
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest

from . import databases, dbimage, metadata, progress, switch


@dataclass
class Result:
    nodeid: str
    exercise: str
    task: int | None
    points: int
    outcome: str  # passed, failed, error or skipped
    message: str
    name: str = ""  # the test as a sentence (Exercism's "name")
    test_code: str = ""  # the test function's body (Exercism's "test_code")
    output: str = ""  # what the code under test printed (Exercism's "output")


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


_stacks_file = None


@pytest.hookimpl(wrapper=True)
def pytest_load_initial_conftests(early_config, parser, args):
    """Turn --solutions on before pytest-django may set Django up (it does so in this hook
    when DJANGO_SETTINGS_MODULE is in the environment), so the right admin.py is imported.

    Under `workbook class grade`, $WORKBOOK_STACKS_AFTER arms faulthandler first: every
    thread's stack goes to the real stderr (not pytest's capture) just before the time limit."""
    global _stacks_file
    seconds = os.environ.get("WORKBOOK_STACKS_AFTER")
    if seconds and _stacks_file is None:
        import faulthandler

        _stacks_file = os.fdopen(os.dup(2), "w")
        faulthandler.dump_traceback_later(float(seconds), file=_stacks_file)
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

    _refuse_another_checkout(config)
    _refuse_an_unusable_database()
    settings.INSTALLED_APPS  # noqa: B018
    _faster_test_runs(settings)
    dbimage.install()
    _refuse_a_mixed_up_mode()
    if switch.solutions_mode():
        for category in ("RemovedInNextVersionWarning", "RemovedInDjango2028Warning"):
            config.addinivalue_line(
                "filterwarnings", f"error::django.utils.deprecation.{category}"
            )
    config.stash[_results_key] = {}


def _refuse_another_checkout(config):
    """Stop when pytest runs in one workbook but imported another: a .venv made by (or
    linked to) another clone maps `workbook` to that clone, whose exercises would be tested
    while this folder's header is shown."""
    here = Path(config.rootpath).resolve()
    if (here / "workbook" / "exercises.toml").is_file() and here != metadata.ROOT.resolve():
        raise pytest.UsageError(
            f"pytest runs in {here}, but it imported the workbook from {metadata.ROOT}: it "
            "would test that folder's exercises, not these. Run `python3 -m workbook test N` "
            "here, or give this folder a .venv of its own (`python3 -m workbook` makes one)."
        )


def _refuse_an_unusable_database():
    """A $DATABASE_URL the tests cannot use, said in one line instead of a traceback per test."""
    url = os.environ.get(databases.VARIABLE)
    if url:
        try:
            databases.check(url, needs_createdb=True)
        except databases.DatabaseUrlError as error:
            raise pytest.UsageError(f"{databases.VARIABLE}: {error}") from None
        if databases.is_postgresql(url):
            # A run killed before its end (SIGKILL, a closed terminal) left its database.
            name = databases.parse(url)["NAME"]
            databases.drop_abandoned(url, f"test_{name}_")


def _faster_test_runs(settings):
    """Test runs only (the demo site keeps Django's defaults); measured by `workbook bench
    --loop`. Sessions live in the process's memory, not in a table: every admin_client logs
    in, a session row each (no test reads the session table). The admin's navigation sidebar,
    every model of every exercise on each page, is not rendered: no test reads it."""
    from django.contrib.admin import AdminSite

    settings.SESSION_ENGINE = "django.contrib.sessions.backends.cache"
    AdminSite.enable_nav_sidebar = False


def pytest_collection_finish(session):
    """What is alive after the imports and the collection (Django, the apps, the tests)
    lives to the end: keep it out of the garbage collector's full passes (and out of
    pytest's final gc.collect() calls), which otherwise walk it again and again."""
    import gc

    gc.freeze()


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
    url = os.environ.get(databases.VARIABLE)
    database = f"workbook: database {databases.shown(url)}" if url else "workbook: database SQLite"
    if switch.solutions_mode():
        return ["workbook: testing the reference answers in solutions/", database]
    return [
        "workbook: testing your code in exercises/ (add --solutions for the reference answers)",
        database,
    ]


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


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """An exercise whose admin.py does not import, or that fails Django's system checks,
    fails its own tests with that error, and no others; an exception raised by the learner's
    code fails the test in the workbook's format rather than as Django's traceback."""
    exercise = exercise_of(item.path)
    if exercise is None:
        return (yield)
    from .apps import broken_admins

    if exercise.label in broken_admins:
        pytest.fail(
            f"exercises/{exercise.folder}/admin.py could not be imported, so this test "
            f"cannot run. Fix this error first:\n\n{broken_admins[exercise.label]}",
            pytrace=False,
        )
    errors = check_errors(exercise)
    if errors:
        pytest.fail(
            f"exercises/{exercise.folder} fails Django's system checks (what `manage.py "
            "check` runs), so this test cannot run. Fix these first:\n"
            + "\n".join(errors),
            pytrace=False,
        )
    try:
        return (yield)
    except Exception as error:  # noqa: BLE001 - only the learner's own errors are rewritten
        from .testing import caused_by_learner, explain_raised

        if not caused_by_learner(error):
            raise
        message = explain_raised(error, "Your code")
    from .testing import fail_raised

    fail_raised(message)


_checked = {}


def check_errors(exercise):
    """Django's system-check errors for the exercise's app, one line each (run once)."""
    if exercise.label not in _checked:
        from django.apps import apps
        from django.core import checks

        found = checks.run_checks(
            app_configs=[apps.get_app_config(exercise.label)], include_deployment_checks=False
        )
        lines = []
        for message in found:
            if message.level < checks.ERROR or message.is_silenced():
                continue
            obj = message.obj
            name = getattr(getattr(obj, "_meta", None), "label", None) or getattr(
                obj, "__qualname__", None) or type(obj).__qualname__
            hint = f" HINT: {message.hint}" if message.hint else ""
            lines.append(f"  {message.id} {name}: {message.msg}{hint}")
        _checked[exercise.label] = lines
    return _checked[exercise.label]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    exercise = exercise_of(item.path)
    if exercise is None:
        return report
    marker = item.get_closest_marker("task")
    task = marker.args[0]
    if report.failed and hasattr(report.longrepr, "addsection"):
        # A failure may name the task whose contract it is (expect(..., task=N)).
        shown = getattr(call.excinfo.value, "workbook_task", None) if call.excinfo else None
        shown = shown or task
        title = exercise.tasks[shown - 1] if 0 < shown <= len(exercise.tasks) else "?"
        report.longrepr.addsection(
            f"Task {shown}: {title}",
            f"Read task {shown} in {exercise.lesson}; stuck? "
            f"Run `{metadata.runnable(f'workbook hint {exercise.number}.{shown}')}`.",
        )
        if report.when == "call":
            _group_the_same_failure(item.config, exercise, task, report)
    if call.excinfo and getattr(call.excinfo.value, "workbook_raised", False):
        # The message says what was raised and where; Django's log of it repeats the
        # traceback the message replaces.
        report.sections = [s for s in report.sections if not s[0].startswith("Captured log")]
    if report.when == "call" or report.outcome != "passed":
        outcome = report.outcome
        if report.when != "call" and report.outcome == "failed":
            outcome = "error"
        keep_result(item.config, Result(
            nodeid=item.nodeid,
            exercise=exercise.folder,
            task=task,
            points=marker.kwargs.get("points", 1),
            outcome=outcome,
            message=_held_out_message(report, task) if item.path.name.startswith(
                progress.HELD_OUT_PREFIX) else _message(report),
            name=f"{exercise.number:02d}, task {task}: {readable_name(item)}",
            test_code=test_code(item.function),
            output=report.capstdout[:progress.OUTPUT_KEPT],
        ))
    return report


def keep_result(config, result):
    """A test's result: its first phase that did not pass (a teardown's error does not
    hide the call's failure), else the call's."""
    results = config.stash[_results_key]
    previous = results.get(result.nodeid)
    if previous is None or previous.outcome == "passed":
        results[result.nodeid] = result


def readable_name(item):
    """The test as a sentence: test_a_refund_s_page_asks[one] -> "A refund's page asks (one)"."""
    words = item.originalname.removeprefix("test_").replace("_", " ")
    words = re.sub(r"(?<=\w) s\b", "'s", words)
    callspec = getattr(item, "callspec", None)
    return words[:1].upper() + words[1:] + (f" ({callspec.id})" if callspec else "")


@functools.cache
def test_code(function):
    """The body of a test function, without its docstring, dedented."""
    try:
        source = textwrap.dedent(inspect.getsource(function))
        definition = ast.parse(source).body[0]
    except (OSError, TypeError, SyntaxError, IndexError):
        return ""
    body = definition.body
    if len(body) > 1 and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]  # the docstring
    lines = source.splitlines()[body[0].lineno - 1:body[-1].end_lineno]
    return textwrap.dedent("\n".join(lines))


def _message(report):
    """The whole failure message (what the learner reads first), without "Failed: "."""
    if report.passed:
        return ""
    text = getattr(report.longrepr, "reprcrash", None)
    text = text.message if text is not None else str(report.longrepr)
    return text.removeprefix("Failed: ").strip()


def _held_out_message(report, task):
    """An instructor's held-out test (`class grade --extra-tests`) shows the learner what it
    says with pytest.fail (or expect), never an assertion, which quotes the test's code."""
    crash = getattr(report.longrepr, "reprcrash", None)
    if report.passed or (crash is not None and crash.message.startswith("Failed: ")):
        return _message(report)
    return f"A held-out test of task {task} failed; read task {task} again."


_groups_key = pytest.StashKey[dict]()
_SAME_REASON = "the same failure"


def _group_the_same_failure(config, exercise, task, report):
    """Show a failure message once per exercise: a later test failing with the very same
    message is left out of the FAILURES section (still counted, and listed as FAILED), and
    the first one says how many more fail for the same reason."""
    text = _message(report)
    if not text:
        return
    groups = config.stash.setdefault(_groups_key, {})
    key = (exercise.folder, text)
    if key not in groups:
        groups[key] = {"first": report, "more": 0, "tasks": set()}
        return
    group = groups[key]
    group["more"] += 1
    group["tasks"].add(task)
    # What pytest's terminal reporter reads as "already shown" (as after --pdb showed it).
    report._pdbshown = True
    tasks = sorted(group["tasks"])
    named = "task " + str(tasks[0]) if len(tasks) == 1 else (
        "tasks " + ", ".join(map(str, tasks[:-1])) + f" and {tasks[-1]}")
    more = group["more"]
    line = (f"{more} more test{'s' if more > 1 else ''} of {named} fail{'' if more > 1 else 's'} "
            "for the same reason (listed as FAILED at the end).")
    sections = group["first"].longrepr.sections
    for index, (title, _, sep) in enumerate(sections):
        if title == _SAME_REASON:
            sections[index] = (title, line, sep)
            break
    else:
        group["first"].longrepr.addsection(_SAME_REASON, line)


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
            "broken": _broken_exercises(),
            "tests": [asdict(r) for key, r in results.items() if key != "__leak__"],
        }
        if path.startswith("/dev/fd/"):
            # class grade's pipe: written through the descriptor it passed, which a sandboxed
            # run's own uid may not open again by name.
            with os.fdopen(int(path.removeprefix("/dev/fd/")), "w") as stream:
                stream.write(json.dumps(payload, indent=2))
        else:
            Path(path).write_text(json.dumps(payload, indent=2))


def _broken_exercises():
    """{folder: why its tests cannot run} for exercises whose admin.py does not import or
    that fail Django's system checks (those whose tests ran)."""
    from .apps import broken_reasons

    broken = {}
    for exercise in metadata.exercises():
        if exercise.label in broken_reasons:
            broken[exercise.folder] = (
                f"admin.py does not import: {broken_reasons[exercise.label]}"
            )
        elif _checked.get(exercise.label):
            ids = sorted({line.split()[0] for line in _checked[exercise.label]})
            broken[exercise.folder] = f"fails Django's system checks: {', '.join(ids)}"
    return broken


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
        every = [r for r in graded if r.exercise == exercise.folder]
        if not every:
            continue
        # Skipped: a test this database cannot run (row locks, on SQLite).
        mine = [r for r in every if r.outcome != "skipped"]
        passed = [r for r in mine if r.outcome == "passed"]
        earned = sum(r.points for r in passed)
        total = sum(r.points for r in mine)
        elsewhere = [r for r in every if r.outcome == "skipped"]
        # A selection (-k, a test's id, -x) ran tests worth less than the exercise: its line
        # must not read like the exercise's total.
        selection = total + sum(r.points for r in elsewhere) < exercise.points
        terminalreporter.write_line(
            f"{exercise.folder:<20} {len(passed):>3}/{len(mine):<3} "
            + (f"selected tests passing   {earned:>3}/{total:<3} of their points "
               f"(the exercise has {exercise.points})" if selection else
               f"tests passing   {earned:>3}/{total:<3} points")
            + (f"   (+{len(elsewhere)} test{'s' * (len(elsewhere) != 1)}, "
               f"{sum(r.points for r in elsewhere)} points, on PostgreSQL only)"
               if elsewhere else ""),
            green=len(passed) == len(mine),
        )
