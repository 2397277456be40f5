"""The machinery behind the exercises: settings, the solutions switch, grading and the CLI.

This file and __main__.py must stay importable by any Python 3, since `python3 -m workbook`
may start on an older interpreter before it moves into the project's own virtualenv.
"""
