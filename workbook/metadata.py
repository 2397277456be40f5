"""The exercise list, read from exercises.toml: one place for order, titles, tasks and points."""

import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXERCISES_DIR = ROOT / "exercises"
SOLUTIONS_DIR = ROOT / "solutions"
# How a graded test that SQLite cannot run (it proves row locks) says so when it skips.
POSTGRESQL_ONLY = "PostgreSQL only"


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
