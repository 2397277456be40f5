"""Where a learner stands: one pytest run over every suite, shown as a board or graded.

Grades follow Exercism's test-runner results.json (version 3: an overall status, and per test
its name, code, status, message, output and task id), with points added; JUnit XML serves
CI-based graders.
"""

import json
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

from . import metadata


def run_suites(*paths, solutions=False, quiet=True, cwd=None):
    """Run pytest once over `paths` (every exercise by default), in the workbook at CWD
    (this one by default).

    Returns (exit code, report, output); report is None when pytest could not run the tests.
    """
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        command = [
            sys.executable, "-m", "pytest", *(paths or ["exercises"]), "-p", "no:cacheprovider",
            f"--workbook-report={report}", *(["--solutions"] if solutions else ["-q"]),
        ]
        env = {key: value for key, value in os.environ.items() if key != "WORKBOOK_SOLUTIONS"}
        done = subprocess.run(command, cwd=cwd or metadata.ROOT, env=env, text=True,
                              capture_output=quiet)
        data = json.loads(report.read_text()) if report.exists() else None
    return done.returncode, data, (done.stdout or "") + (done.stderr or "")


def by_exercise(report, skipped=False):
    """[(exercise, its test results)] in the workbook's order. A test skipped is one this
    database cannot run (PostgreSQL's row locks on SQLite): left out unless `skipped`."""
    return [
        (exercise, [t for t in report["tests"] if t["exercise"] == exercise.folder
                    and (skipped or t["outcome"] != "skipped")])
        for exercise in metadata.exercises()
    ]


def bar(done, total, width=20):
    filled = round(width * done / total) if total else 0
    return "[" + "#" * filled + "-" * (width - filled) + "]"


def next_step(report):
    """(exercise, task) of the first task with a test that does not pass, or None.

    An exercise whose tests cannot run at all (its admin.py does not import) comes first."""
    broken = report.get("broken", {})
    ordered = sorted(by_exercise(report), key=lambda pair: pair[0].folder not in broken)
    for exercise, tests in ordered:
        failing = sorted(t["task"] for t in tests if t["outcome"] != "passed")
        if failing:
            return exercise, failing[0]
    return None


def board(report):
    """The progress board, as lines of text."""
    lines = ["Django admin actions workbook: your progress", ""]
    broken = report.get("broken", {})
    for exercise, tests in by_exercise(report):
        passed = [t for t in tests if t["outcome"] == "passed"]
        points = sum(t["points"] for t in passed)
        if exercise.folder in broken:
            lines.append(f"  {exercise.folder:<20} !! {broken[exercise.folder]}")
            continue
        possible = sum(t["points"] for t in tests)
        elsewhere = exercise.points - possible
        lines.append(
            f"  {exercise.folder:<20} {bar(len(passed), len(tests))} "
            f"{len(passed):>2}/{len(tests):<2} tests  {points:>2}/{possible:<2} points"
            f"  {exercise.title}"
            + (f" (+{elsewhere} points on PostgreSQL)" if tests and 0 < elsewhere else "")
        )
    lines.append("")
    step = next_step(report)
    if step is None:
        lines.append("Every exercise passes. Well done!")
        return lines
    exercise, task = step
    run = metadata.runnable
    check = run(f"pytest exercises/{exercise.folder}")
    if exercise.folder in broken:
        return lines + [
            f"Next: exercise {exercise.folder} ({broken[exercise.folder]}): none of "
            "its tests can run until you fix it.",
            *(f"  fix    exercises/{exercise.folder}/{name}" for name in exercise.learner_files
              if name.endswith(".py")),
            f"  check  {check}   (the error in full; or: "
            f"{run(f'workbook test {exercise.number}')})",
        ]
    lines += [
        f"Next: exercise {exercise.folder}, task {task}: {exercise.tasks[task - 1]}",
        f"  read   {exercise.lesson}  (## Task {task})",
        *(f"  edit   exercises/{exercise.folder}/{name}" for name in exercise.learner_files),
        f"  check  {check}   (or: {run(f'workbook test {exercise.number}')})",
        f"  stuck? {run(f'workbook hint {exercise.number}')}",
    ]
    return lines


STATUS = {"passed": "pass", "failed": "fail", "error": "error", "skipped": "error"}
# Exercism's limit on a test's output, and what it says where it cut.
OUTPUT_LIMIT = 500
TRUNCATED = "\nOutput was truncated. Please limit to 500 chars"
# What a run's report keeps of a test's output: enough to tell that it was cut, and a flood
# of output cannot flood the report.
OUTPUT_KEPT = 2 * OUTPUT_LIMIT
# A held-out test's file in a graded copy (`class grade --extra-tests`).
HELD_OUT_PREFIX = "test_held_out_"


def results(report):
    """Exercism's results.json (version 3) for the whole workbook, with points added: per
    test its name as a sentence, its code, what the code under test printed, its task; the
    pytest node id, exercise and points beside them (extra keys, which the spec allows)."""
    tests = [
        {
            "name": test.get("name") or test["nodeid"],
            "status": STATUS[test["outcome"]],
            "message": test["message"] or None,
            "test_code": test.get("test_code", ""),
            **({"output": _limited(test["output"])} if test.get("output") else {}),
            "task_id": test["task"],
            "nodeid": test["nodeid"],
            "exercise": test["exercise"],
            "points": test["points"] if test["outcome"] == "passed" else 0,
            "max_points": test["points"],
            **({"held_out": True} if test.get("held_out") else {}),
        }
        for test in report["tests"]
        if test["outcome"] != "skipped"  # not on this database: no points either way
    ]
    status, message = _overall(tests, report)
    earned = sum(t["points"] for t in tests)
    possible = sum(t["max_points"] for t in tests)
    return {
        "version": 3,
        "status": status,
        "message": message,
        "points": earned,
        "max_points": possible,
        "percentage": round(100 * earned / possible, 1) if possible else 0.0,
        "exercises": [
            {
                "exercise": exercise.folder,
                "title": exercise.title,
                "passed": sum(t["outcome"] == "passed" for t in mine),
                "tests": len(mine),
                "points": sum(t["points"] for t in mine if t["outcome"] == "passed"),
                "max_points": sum(t["points"] for t in mine),
            }
            for exercise, mine in by_exercise(report)
        ],
        "tests": tests,
    }


def _overall(tests, report):
    """The spec's status and message: "error" (with what went wrong) only when no test ran
    properly; "fail" when one failed or errored; else "pass"."""
    if tests and any(t["status"] != "error" for t in tests):
        return ("fail" if any(t["status"] != "pass" for t in tests) else "pass"), None
    broken = report.get("broken") or {}
    reasons = [f"{folder}: {why}" for folder, why in sorted(broken.items())]
    first = next((t["message"] for t in tests if t["message"]), None)
    return "error", "\n".join(reasons) or first or "No test ran."


def _limited(output):
    return output if len(output) <= OUTPUT_LIMIT else output[:OUTPUT_LIMIT] + TRUNCATED


def junit(report):
    """JUnit XML: a testsuite per exercise, points as properties."""
    root = ET.Element("testsuites", name="django-admin-actions-workbook")
    for exercise, tests in by_exercise(report):
        suite = ET.SubElement(
            root, "testsuite", name=exercise.folder, tests=str(len(tests)),
            failures=str(sum(t["outcome"] == "failed" for t in tests)),
            errors=str(sum(t["outcome"] in ("error", "skipped") for t in tests)),
        )
        properties = ET.SubElement(suite, "properties")
        earned = sum(t["points"] for t in tests if t["outcome"] == "passed")
        ET.SubElement(properties, "property", name="points", value=str(earned))
        ET.SubElement(properties, "property", name="max_points",
                      value=str(sum(t["points"] for t in tests)))
        for test in tests:
            case = ET.SubElement(suite, "testcase", classname=exercise.folder,
                                 name=test["nodeid"].split("::", 1)[-1])
            case_properties = ET.SubElement(case, "properties")
            ET.SubElement(case_properties, "property", name="task", value=str(test["task"]))
            ET.SubElement(case_properties, "property", name="points", value=str(test["points"]))
            if test["outcome"] == "failed":
                ET.SubElement(case, "failure", message=test["message"])
            elif test["outcome"] in ("error", "skipped"):
                ET.SubElement(case, "error", message=test["message"])
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def grade_table(graded):
    """The grade as lines of text: points per exercise, total and percentage."""
    lines = [f"{'exercise':<20} {'tests':>9} {'points':>9}"]
    for entry in graded["exercises"]:
        lines.append(
            f"{entry['exercise']:<20} {entry['passed']:>4}/{entry['tests']:<4} "
            f"{entry['points']:>4}/{entry['max_points']:<4}"
        )
    lines.append(
        f"{'total':<20} {'':>9} {graded['points']:>4}/{graded['max_points']:<4} "
        f"{graded['percentage']}%"
    )
    return lines


def markdown(graded):
    """The grade as a Markdown table, for a CI job's summary page."""
    learner = (graded.get("workbook") or {}).get("learner")
    lines = [
        f"## Workbook grade{f' of {learner}' if learner else ''}: {graded['points']}/"
        f"{graded['max_points']} points ({graded['percentage']} %)",
        "",
        "| exercise | tests passing | points |",
        "| --- | ---: | ---: |",
    ]
    for entry in graded["exercises"]:
        lines.append(f"| {entry['exercise']} | {entry['passed']}/{entry['tests']} | "
                     f"{entry['points']}/{entry['max_points']} |")
    return "\n".join(lines) + "\n"
