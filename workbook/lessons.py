"""Keep the lessons' code the code that runs.

Every code block in a lesson (except ```console commands) is preceded by a marker naming
where it comes from:

    <!-- source: solutions/01_basic_action/admin.py ArticleAdmin.make_published -->

followed by a fence holding that Python function or class as written in the file, or, without
a qualified name, the whole file (a template, say). `check()` finds blocks that drifted or
have no source; `sync()` rewrites them from their sources.
"""

import ast
import re
import textwrap

from .metadata import ROOT

LESSONS_DIR = ROOT / "lessons"
BLOCK = re.compile(
    r"(?P<marker><!-- source: (?P<path>\S+)(?: (?P<name>[\w.]+))? -->\n)"
    r"(?P<fence>```\w+\n)(?P<code>.*?)```\n",
    re.DOTALL,
)
CODE_FENCE = re.compile(r"^```(?!console)\w+\n", re.MULTILINE)


def extract(path, qualname=None):
    """The source of `qualname` (decorators included) in the file at `path`, dedented."""
    source = (ROOT / path).read_text()
    if not qualname:
        return source
    nodes = ast.parse(source).body
    node = None
    for part in qualname.split("."):
        node = next(
            (
                n
                for n in nodes
                if isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))
                and n.name == part
            ),
            None,
        )
        if node is None:
            raise LookupError(f"{path} has no {qualname}")
        nodes = node.body
    lines = source.splitlines(keepends=True)
    start = min([node.lineno, *(d.lineno for d in node.decorator_list)]) - 1
    return textwrap.dedent("".join(lines[start : node.end_lineno]))


def _expected(match):
    return extract(match["path"], match["name"])


def check(lesson):
    """Problems in one lesson, as readable lines; empty when every block matches its source."""
    text = lesson.read_text()
    problems = []
    sourced = {m.start("fence") for m in BLOCK.finditer(text)}
    for fence in CODE_FENCE.finditer(text):
        if fence.start() not in sourced:
            line = text.count("\n", 0, fence.start()) + 1
            problems.append(
                f"{lesson.name}:{line}: a code block without a <!-- source: ... --> marker"
            )
    for match in BLOCK.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        where = f"{match['path']} {match['name'] or ''}".strip()
        try:
            expected = _expected(match)
        except (OSError, LookupError) as error:
            problems.append(f"{lesson.name}:{line}: cannot read {where}: {error}")
            continue
        if match["code"] != expected:
            problems.append(f"{lesson.name}:{line}: the block differs from {where}")
    return problems


def sync(lesson):
    """Rewrite every sourced block of `lesson` from its source; True if anything changed."""
    text = lesson.read_text()
    new = BLOCK.sub(lambda m: f"{m['marker']}{m['fence']}{_expected(m)}```\n", text)
    if new != text:
        lesson.write_text(new)
    return new != text


def lessons():
    return sorted(LESSONS_DIR.glob("*.md"))
