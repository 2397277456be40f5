"""Keep the answers out of sight: what a learner reads must not show a reference answer.

A learner reads the lessons, the hints, the notebooks and the stubs. None of them may show
code from `solutions/`: no `<!-- source: -->` marker may point there, no block of code (a
fenced block, a notebook cell or its output) may share four or more of an answer's
non-trivial lines, and a stub may not import what only the answer uses.
"""

import ast
import json
import re

from . import metadata

SHARED_LINES = 4
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.DOTALL | re.MULTILINE)
MARKER = re.compile(r"<!-- source: (\S+)")


def _normal(line):
    return " ".join(line.split())


def _trivial(line):
    """Punctuation, a bare keyword or a comment: shared by any two programs."""
    return len(line) < 12 or line.startswith(("#", "{#")) or not re.search(r"[A-Za-z]{3}", line)


def answer_lines(exercise):
    """The non-trivial lines of an exercise's answers that its stubs do not already show."""
    lines = set()
    for name in exercise.learner_files:
        stub = {_normal(s) for s in (exercise.path / name).read_text().splitlines()}
        for line in (exercise.solution_path / name).read_text().splitlines():
            line = _normal(line)
            if line not in stub and not _trivial(line):
                lines.add(line)
    return lines


def blocks(path):
    """(where, text) of every block of code a learner sees in a lesson, hints or notebook."""
    text = path.read_text()
    if path.suffix == ".ipynb":
        for number, cell in enumerate(json.loads(text)["cells"], start=1):
            yield f"cell {number}", "".join(cell["source"])
            for output in cell.get("outputs", []):
                shown = output.get("text") or output.get("data", {}).get("text/plain", "")
                yield f"cell {number} output", "".join(shown)
        return
    for match in FENCE.finditer(text):
        yield f"line {text.count(chr(10), 0, match.start()) + 1}", match.group(1)


def shown_answers(path, exercises=None):
    """Problems: places in `path` that show an answer's code."""
    problems = []
    relative = path.relative_to(metadata.ROOT)
    for marker in MARKER.finditer(path.read_text()):
        if marker.group(1).startswith("solutions/"):
            problems.append(f"{relative}: a source marker points into the answers: "
                            f"{marker.group(1)}")
    answers = {e.folder: answer_lines(e) for e in exercises or metadata.exercises()}
    for where, text in blocks(path):
        seen = {_normal(line) for line in text.splitlines()}
        for folder, lines in answers.items():
            shared = seen & lines
            if len(shared) >= SHARED_LINES:
                problems.append(
                    f"{relative} ({where}) shows {len(shared)} lines of solutions/{folder}, "
                    f"e.g. {sorted(shared)[0]!r}"
                )
    return problems


def imports_only_the_answer_needs(exercise):
    """Problems: names a stub imports but does not use (they would tell the answer)."""
    problems = []
    path = exercise.path / "admin.py"
    if "admin.py" not in exercise.learner_files:
        return problems
    tree = ast.parse(path.read_text())
    imported = {}
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                imported[(alias.asname or alias.name).split(".")[0]] = node.lineno
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    for name, line in sorted(imported.items()):
        if name not in used:
            problems.append(f"exercises/{exercise.folder}/admin.py:{line}: the stub imports "
                            f"{name}, which only the answer uses")
    return problems


def learner_documents():
    """Every file a learner reads to solve the exercises, answers excepted."""
    root = metadata.ROOT
    return sorted(
        [*root.glob("lessons/*.md"), *root.glob("exercises/*/hints.md"),
         *root.glob("notebooks/*.ipynb")]
    )


def problems():
    found = []
    for path in learner_documents():
        found += shown_answers(path)
    for exercise in metadata.exercises():
        found += imports_only_the_answer_needs(exercise)
    return found
