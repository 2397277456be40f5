"""The solutions switch: run the very same tests against the reference answers.

In solutions mode an import hook answers `exercises.<folder>.<module>` from
`solutions/<folder>/<module>.py` whenever that file exists, under the exercise's own module
name, so a reference answer is a drop-in copy of the learner's file (same relative imports).
The learner's files and the tests never change, and nothing imports from `solutions/`.
"""

import importlib.abc
import importlib.util
import os
import sys
import warnings

from .metadata import SOLUTIONS_DIR

ENV_VAR = "WORKBOOK_SOLUTIONS"


def solutions_mode():
    return os.environ.get(ENV_VAR, "").lower() in {"1", "true", "yes", "on"}


class SolutionFinder(importlib.abc.MetaPathFinder):
    """Find `exercises.<folder>.<module>` in `solutions/<folder>/<module>.py` first."""

    def find_spec(self, fullname, path=None, target=None):
        parts = fullname.split(".")
        if len(parts) < 3 or parts[0] != "exercises":
            return None
        candidate = SOLUTIONS_DIR.joinpath(*parts[1:]).with_suffix(".py")
        if candidate.is_file():
            return importlib.util.spec_from_file_location(fullname, candidate)
        return None


class SolutionGuard(importlib.abc.MetaPathFinder):
    """In learner mode, refuse any import of the reference answers."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname == "solutions" or fullname.startswith("solutions."):
            raise ImportError(
                f"'{fullname}' is a reference answer: learner-mode code and tests may not "
                "import it. Run with --solutions (or WORKBOOK_SOLUTIONS=1) to use the answers."
            )
        return None


def install():
    """Put the right finder first on sys.meta_path; safe to call more than once."""
    finder_type = SolutionFinder if solutions_mode() else SolutionGuard
    if not any(isinstance(f, (SolutionFinder, SolutionGuard)) for f in sys.meta_path):
        sys.meta_path.insert(0, finder_type())
    if solutions_mode():
        # The reference answers show today's API, not one Django is retiring.
        from django.utils import deprecation

        for category in (
            deprecation.RemovedInNextVersionWarning,
            deprecation.RemovedInDjango2028Warning,
        ):
            warnings.filterwarnings("error", category=category)


def modules_loaded_from_solutions():
    """Names of imported modules whose code came from solutions/ (must be empty in learner mode)."""
    prefix = str(SOLUTIONS_DIR) + os.sep
    return sorted(
        name
        for name, module in list(sys.modules.items())
        if (getattr(module, "__file__", None) or "").startswith(prefix)
    )


def solution_template_dirs():
    """Template folders of the reference answers, searched before the learner's own."""
    if not solutions_mode():
        return []
    return sorted(p for p in SOLUTIONS_DIR.glob("*/templates") if p.is_dir())

