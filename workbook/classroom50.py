"""Classroom 50 (github.com/foundation50/classroom50), GitHub Classroom's open-source successor:
its result.json, schema `classroom50/result/v1`, from a grading, and back for `class report`.

The fields are those of Classroom 50's schemas/result-v1.schema.json. Its runner
(.github/scripts/runner.py in the classroom's `classroom50` repository) runs an autograder in
the learner's checkout, with the submission named in environment variables, and publishes the
./result.json it leaves; it then stamps owner, assignment_type, datetime and graded_at itself.
Per test, the workbook adds its exercise, task_id and message (the schema allows extra fields,
the runner keeps them): `class report` needs them to say which task a class struggles with.
"""

import os
import subprocess
from datetime import UTC, datetime

from . import metadata

SCHEMA = "classroom50/result/v1"
# What the runner gives an autograder (runner.py, run_entrypoint): without one of them the
# result would name no submission, or a wrong one.
REQUIRED = ("CLASSROOM", "ASSIGNMENT", "SUBMISSION_TAG", "COMMIT_URL", "RELEASE_URL")


def utc(moment):
    """The schema's time format: YYYY-MM-DDTHH:MM:SSZ."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def submission(environ=os.environ):
    """The submission's fields, from the runner's variables, or ValueError naming what is
    missing. Checked before grading: a wrong or half-named result is never written."""
    value = {name: environ.get(name, "").strip() for name in REQUIRED}
    owner = environ.get("OWNER", "").strip() or environ.get("USERNAME", "").strip()
    missing = [name for name, text in value.items() if not text]
    missing += [] if owner else ["OWNER (or USERNAME)"]
    if missing:
        raise ValueError(
            "--classroom50 needs the variables Classroom 50's runner sets for an autograder; "
            f"missing: {', '.join(missing)}")
    if not value["SUBMISSION_TAG"].startswith("submit/"):
        raise ValueError(f"SUBMISSION_TAG is {value['SUBMISSION_TAG']!r}: Classroom 50 "
                         "grades submit/* tags only")
    return {
        "schema": SCHEMA,
        "classroom": value["CLASSROOM"],
        "assignment": value["ASSIGNMENT"],
        # The runner's default when the assignment's mode is not given (runner.py).
        "assignment_type": environ.get("ASSIGNMENT_TYPE", "").strip() or "individual",
        "owner": owner,
        "submission": value["SUBMISSION_TAG"],
        "commit": value["COMMIT_URL"],
        "release": value["RELEASE_URL"],
        # No baseline to compare with: the commit view, as the runner falls back.
        "review": environ.get("REVIEW_URL", "").strip() or value["COMMIT_URL"],
        "datetime": submitted_at(environ.get("GITHUB_SHA", "").strip() or "HEAD"),
    }


def submitted_at(commit):
    """The submission instant as Classroom 50 defines it: the graded commit's committer date
    (the runner stamps the same), or ValueError outside a git checkout."""
    done = subprocess.run(["git", "log", "-1", "--format=%ct", commit, "--"],
                          cwd=metadata.ROOT, capture_output=True, text=True)
    if done.returncode != 0 or not done.stdout.strip():
        raise ValueError(f"--classroom50 needs the graded commit's date: git cannot read "
                         f"{commit} in {metadata.ROOT}")
    return utc(datetime.fromtimestamp(int(done.stdout.strip()), UTC))


def result(graded, fields, now=None):
    """The result.json of GRADED (`progress.results`) for the submission FIELDS."""
    return {
        **fields,
        "graded_at": utc(now or datetime.now(UTC)),
        "score": graded["points"],
        "max-score": graded["max_points"],
        "tests": [
            {"test-name": test["name"], "passed": test["status"] == "pass",
             "score": test["points"], "max-score": test["max_points"],
             "exercise": test["exercise"], "task_id": test["task_id"],
             "message": test["message"]}
            for test in graded["tests"]
        ],
    }


def as_results(data):
    """A Classroom 50 result.json as the results.json `class report` reads, or a str: why it
    is none. What the converted file lacks, `class report`'s own check says."""
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        return f"not a Classroom 50 result.json (its schema is not {SCHEMA})"
    tests = data.get("tests")
    if not isinstance(tests, list) or not tests:
        return "a Classroom 50 result.json with no tests (no autograder of this workbook ran)"
    score, maximum = data.get("score"), data.get("max-score")
    numbers = all(isinstance(n, int) and not isinstance(n, bool) for n in (score, maximum))
    return {
        "version": 3,
        "points": score,
        "max_points": maximum,
        "percentage": round(100 * score / maximum, 1) if numbers and maximum else 0.0,
        "tests": [
            {"name": test.get("test-name"), "status": "pass" if test.get("passed") is True
             else "fail", "message": test.get("message"), "task_id": test.get("task_id"),
             "exercise": test.get("exercise"), "points": test.get("score"),
             "max_points": test.get("max-score")}
            if isinstance(test, dict) else test
            for test in tests
        ],
        "workbook": {
            "learner": data.get("owner"),
            "graded_at": data.get("graded_at") or data.get("datetime"),
            "submission": data.get("submission"),
        },
    }
