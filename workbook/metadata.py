"""The exercise list, read from exercises.toml: one place for order, titles, tasks and points.

And the one place that decides how a command printed for a learner must be spelled to run.
"""

import shutil
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXERCISES_DIR = ROOT / "exercises"
SOLUTIONS_DIR = ROOT / "solutions"
# How a graded test that SQLite cannot run (it proves row locks) says so when it skips.
POSTGRESQL_ONLY = "PostgreSQL only"
VENV_BIN = ROOT / ".venv" / "bin"
# What a command printed for a learner becomes when .venv is not active (its scripts are not on
# PATH): the README's `python3 -m workbook`, and the venv's own pytest (another may be on PATH).
OUTSIDE_VENV = {"workbook": "python3 -m workbook", "pytest": ".venv/bin/pytest"}


def runnable(command):
    """COMMAND (`workbook hint 1`, `pytest exercises/01_basic_action`) as it runs when typed in
    the workbook's folder by whoever reads it: as is when .venv is active, else in the form
    that runs without it. `python3 -m workbook` does not activate .venv, so it cannot know
    from that: it looks whether `workbook` on PATH is the venv's."""
    found = shutil.which("workbook")
    if found and Path(found).parent.resolve() == VENV_BIN.resolve():
        return command
    name, _, rest = command.partition(" ")
    return " ".join(filter(None, [OUTSIDE_VENV.get(name, name), rest]))


@dataclass(frozen=True)
class Exercise:
    folder: str
    title: str
    lesson: str
    hints: str
    learner_files: tuple[str, ...]
    points: int
    tasks: tuple[str, ...]

    @property
    def number(self):
        return int(self.folder.split("_", 1)[0])

    @property
    def label(self):
        """The app label: the folder name without its number, which is not an identifier."""
        return self.folder.split("_", 1)[1]

    @property
    def module(self):
        return f"exercises.{self.folder}"

    @property
    def path(self):
        return EXERCISES_DIR / self.folder

    @property
    def solution_path(self):
        return SOLUTIONS_DIR / self.folder


@cache
def exercises():
    with open(Path(__file__).with_name("exercises.toml"), "rb") as f:
        data = tomllib.load(f)
    return tuple(
        Exercise(
            **{
                **entry,
                "learner_files": tuple(entry["learner_files"]),
                "tasks": tuple(entry["tasks"]),
            }
        )
        for entry in data["exercises"]
    )


def by_label(label):
    return next(e for e in exercises() if e.label == label)


def find(name):
    """Look an exercise up by number ("3"), folder ("03_confirmation") or label ("confirmation")."""
    for exercise in exercises():
        if name in (exercise.folder, exercise.label) or (
            name.isdigit() and int(name) == exercise.number
        ):
            return exercise
    return None
