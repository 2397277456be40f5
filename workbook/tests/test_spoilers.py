"""The no-answer rule: what a learner reads shows no code from solutions/."""

import json

from workbook import metadata, spoilers


def test_nothing_a_learner_reads_shows_an_answer():
    problems = spoilers.problems()
    assert not problems, "\n".join(problems)


def exercise_01():
    return metadata.exercises()[0]


def test_a_block_sharing_four_answer_lines_is_caught(tmp_path, monkeypatch):
    monkeypatch.setattr(metadata, "ROOT", tmp_path)
    exercise = exercise_01()
    answer = [line for line in spoilers.answer_lines(exercise)][:4]
    lesson = tmp_path / "lesson.md"
    lesson.write_text("Some prose.\n\n```python\n" + "\n".join(answer) + "\n```\n")
    assert "shows 4 lines of solutions/01_basic_action" in spoilers.shown_answers(
        lesson, [exercise])[0]
    lesson.write_text("```python\n" + "\n".join(answer[:3]) + "\n```\n")
    assert spoilers.shown_answers(lesson, [exercise]) == []


def test_a_marker_into_the_answers_is_caught(tmp_path, monkeypatch):
    monkeypatch.setattr(metadata, "ROOT", tmp_path)
    lesson = tmp_path / "lesson.md"
    lesson.write_text("<!-- source: solutions/01_basic_action/admin.py ArticleAdmin -->\n")
    assert "points into the answers" in spoilers.shown_answers(lesson, [])[0]


def test_a_notebook_output_that_prints_an_answer_is_caught(tmp_path, monkeypatch):
    monkeypatch.setattr(metadata, "ROOT", tmp_path)
    exercise = exercise_01()
    printed = "\n".join(list(spoilers.answer_lines(exercise))[:5])
    notebook = tmp_path / "n.ipynb"
    notebook.write_text(json.dumps({"cells": [{
        "cell_type": "code", "source": ["print(source)"],
        "outputs": [{"output_type": "stream", "name": "stdout", "text": [printed]}],
    }]}))
    assert "(cell 1 output) shows 5 lines" in spoilers.shown_answers(notebook, [exercise])[0]


def test_a_stub_importing_what_only_the_answer_uses_is_caught(tmp_path, monkeypatch):
    exercise = exercise_01()
    folder = tmp_path / exercise.folder
    folder.mkdir()
    (folder / "admin.py").write_text(
        "from django.contrib import admin\nfrom django.db.models.functions import Coalesce\n\n"
        "@admin.register(object)\nclass ArticleAdmin(admin.ModelAdmin):\n    actions = []\n"
    )
    monkeypatch.setattr(type(exercise), "path", property(lambda self: folder))
    problems = spoilers.imports_only_the_answer_needs(exercise)
    assert problems == [f"exercises/{exercise.folder}/admin.py:2: the stub imports Coalesce, "
                        "which only the answer uses"]
