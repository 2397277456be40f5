#!/usr/bin/env python3
"""Classroom 50's autograder for this workbook.

Classroom 50's runner runs this file with cwd at the learner's checkout, the submission named
in its variables (CLASSROOM, ASSIGNMENT, SUBMISSION_TAG, COMMIT_URL, RELEASE_URL, OWNER, ...),
then publishes the ./result.json it leaves (and ./release-body.md) on the submission's
Release. Install it for a classroom (README, "Classroom 50"):

    gh teacher autograder set-default ORG CLASSROOM --from classroom50/autograder.py

`python3 -m workbook` sets .venv up on its first run (the pinned packages), then grades. A
non-zero exit (a variable missing, the tests could not run) is, for the runner, an error of
the grading, never a grade.
"""

import subprocess
import sys

# release-body.md: the points per exercise, not the runner's row per test (200 and more).
sys.exit(subprocess.call([sys.executable, "-m", "workbook", "grade",
                          "--classroom50", "result.json", "--summary", "release-body.md"]))
