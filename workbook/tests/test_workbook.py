"""The workbook's own checks: exercise folders have one shape, lessons match their code, and
the solutions switch does what it says."""

import re
import sys

import pytest

from workbook import lessons, metadata, switch

EXERCISES = metadata.exercises()


def task_headings(path):
    return re.findall(r"^## Task (\d+): (.+)$", (metadata.ROOT / path).read_text(), re.MULTILINE)


@pytest.mark.parametrize("exercise", EXERCISES, ids=lambda e: e.folder)
def test_every_exercise_folder_has_the_same_shape(exercise):
    for name in ("__init__.py", "apps.py", "models.py", "hints.md", "migrations/0001_initial.py"):
        assert (exercise.path / name).is_file(), f"{exercise.folder} lacks {name}"
    assert list(exercise.path.glob("test_*.py")), f"{exercise.folder} has no graded tests"
    assert (metadata.ROOT / "notebooks" / f"{exercise.folder}.ipynb").is_file()
    apps_py = (exercise.path / "apps.py").read_text()
    assert f'label = "{exercise.label}"' in apps_py


@pytest.mark.parametrize("exercise", EXERCISES, ids=lambda e: e.folder)
def test_learner_files_have_a_todo_and_a_reference_answer(exercise):
    for name in exercise.learner_files:
        assert "TODO" in (exercise.path / name).read_text(), f"{name} has no TODO for the learner"
        assert (exercise.solution_path / name).is_file(), f"solutions/{exercise.folder}/{name}"
        assert "TODO" not in (exercise.solution_path / name).read_text()


@pytest.mark.parametrize("exercise", EXERCISES, ids=lambda e: e.folder)
def test_lesson_and_hints_number_their_tasks_as_the_metadata_does(exercise):
    expected = [(str(n), title) for n, title in enumerate(exercise.tasks, start=1)]
    assert task_headings(exercise.lesson) == expected
    assert task_headings(exercise.hints) == expected


@pytest.mark.parametrize("lesson", lessons.lessons(), ids=lambda p: p.name)
def test_lesson_code_is_the_code_that_runs(lesson):
    problems = lessons.check(lesson)
    assert not problems, "\n".join(problems) + "\nRun `python -m workbook lessons --sync`."


def test_the_finder_answers_exercise_modules_from_solutions():
    spec = switch.SolutionFinder().find_spec("exercises.01_basic_action.admin")
    assert spec.origin == str(metadata.SOLUTIONS_DIR / "01_basic_action" / "admin.py")
    assert spec.parent == "exercises.01_basic_action"
    assert switch.SolutionFinder().find_spec("exercises.01_basic_action.models") is None


def test_the_guard_refuses_imports_of_solutions():
    with pytest.raises(ImportError, match="reference answer"):
        switch.SolutionGuard().find_spec("solutions.01_basic_action")


def test_the_loaded_admin_comes_from_the_mode_in_force():
    admin_module = sys.modules["exercises.01_basic_action.admin"]
    folder = metadata.SOLUTIONS_DIR if switch.solutions_mode() else metadata.EXERCISES_DIR
    assert admin_module.__file__ == str(folder / "01_basic_action" / "admin.py")


def test_the_lesson_check_catches_drift_and_unsourced_code(tmp_path):
    lesson = tmp_path / "99_demo.md"
    lesson.write_text(
        "<!-- source: workbook/metadata.py find -->\n```python\ndef find(name): ...\n```\n\n"
        "```python\nprint('from nowhere')\n```\n\n```console\npytest\n```\n"
    )
    problems = "\n".join(lessons.check(lesson))
    assert "99_demo.md:1: the block differs from workbook/metadata.py find" in problems
    assert "99_demo.md:6: a code block without a <!-- source" in problems
    assert lessons.sync(lesson)
    assert len(lessons.check(lesson)) == 1  # synced; the unsourced block remains


def test_the_shipped_migrations_apply_and_match_the_models(tmp_path):
    """The graded tests build their database from the models; the demo and CI migrate."""
    import os
    import subprocess

    env = {**os.environ, "WORKBOOK_DB": str(tmp_path / "migrated.sqlite3")}
    env.pop(switch.ENV_VAR, None)
    manage = [sys.executable, str(metadata.ROOT / "manage.py")]
    migrate = subprocess.run([*manage, "migrate"], env=env, capture_output=True, text=True)
    assert migrate.returncode == 0, migrate.stderr
    check = subprocess.run(
        [*manage, "makemigrations", "--check", "--dry-run"], env=env, capture_output=True,
        text=True,
    )
    assert check.returncode == 0, "Models changed without a migration:\n" + check.stdout


@pytest.mark.parametrize("lesson", lessons.lessons(), ids=lambda p: p.name)
def test_every_lesson_shows_the_real_page(lesson):
    """Screenshots come from the browser tests: `python -m workbook screenshots`."""
    images = re.findall(r"!\[[^\]]+\]\((images/[^)]+\.png)\)", lesson.read_text())
    assert images, f"{lesson.name} shows no screenshot"
    for image in images:
        assert (lesson.parent / image).is_file(), f"{lesson.name}: {image} is missing"
