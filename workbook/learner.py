"""The learner's own files: hints one at a time, a diff with the answer, reset, and watch.

Nothing here deletes learner work: reset keeps a backup first, and state lives in .workbook/
(which git ignores).
"""

import difflib
import json
import re
import subprocess
import sys
import textwrap
import time
from datetime import datetime

from . import gitrepo, metadata

STATE_DIR = metadata.ROOT / ".workbook"
STATE = STATE_DIR / "state.json"


def hints(exercise):
    """[(task, task title, hint)] in order, from the exercise's hints.md."""
    found = []
    task = title = None
    for line in (metadata.ROOT / exercise.hints).read_text().splitlines():
        heading = re.match(r"^## Task (\d+): (.+)$", line)
        if heading:
            task, title = int(heading[1]), heading[2]
        elif task and line.startswith("- "):
            found.append([task, title, line[2:].strip()])
        elif task and line.startswith("  ") and found and found[-1][0] == task:
            found[-1][2] += " " + line.strip()
    return [tuple(hint) for hint in found]


def _state():
    return json.loads(STATE.read_text()) if STATE.exists() else {}


def _save_state(state):
    STATE_DIR.mkdir(exist_ok=True)
    STATE.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")


def next_hint(exercise):
    """Reveal one more hint of `exercise`; return the lines to show."""
    all_hints = hints(exercise)
    state = _state()
    shown = state.setdefault("hints", {}).get(exercise.folder, 0)
    if shown >= len(all_hints):
        return [
            f"You have seen all {len(all_hints)} hints of {exercise.folder}.",
            f"Compare your code with the answer: workbook diff {exercise.number}",
        ]
    task, title, text = all_hints[shown]
    state["hints"][exercise.folder] = shown + 1
    _save_state(state)
    return [
        f"Hint {shown + 1} of {len(all_hints)}, task {task} ({title}):",
        "",
        textwrap.fill(text, width=88, initial_indent="  ", subsequent_indent="  "),
    ]


def diff(exercise):
    """Your files against the reference answer, as one unified diff ('' when they match)."""
    chunks = []
    for name in exercise.learner_files:
        yours = exercise.path / name
        answer = exercise.solution_path / name
        chunks += difflib.unified_diff(
            yours.read_text().splitlines(keepends=True),
            answer.read_text().splitlines(keepends=True),
            fromfile=f"exercises/{exercise.folder}/{name} (yours)",
            tofile=f"solutions/{exercise.folder}/{name} (answer)",
        )
    return "".join(chunks)


def reset(exercise):
    """Put the stubs back; keep your versions in a backup folder. Returns lines to show."""
    backup = STATE_DIR / "backups" / exercise.folder / datetime.now().strftime("%Y%m%d-%H%M%S")
    lines = []
    for name in exercise.learner_files:
        relative = f"exercises/{exercise.folder}/{name}"
        path = metadata.ROOT / relative
        original = gitrepo.pristine_stub(relative)
        if path.exists() and path.read_text() == original:
            lines.append(f"{relative} is already the original stub.")
            continue
        if path.exists():
            saved = backup / name
            saved.parent.mkdir(parents=True, exist_ok=True)
            saved.write_text(path.read_text())
            lines.append(f"{relative}: your version is saved as {saved.relative_to(metadata.ROOT)}")
        path.write_text(original)
        lines.append(f"{relative}: back to the original stub.")
    return lines


def _snapshot(exercise):
    """Modification times of the exercise's files (the learner's and the tests)."""
    return {
        path: path.stat().st_mtime_ns
        for path in sorted(exercise.path.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }


def watch(exercise, max_runs=None, interval=0.5):
    """Run the exercise's tests now and after every save, until Ctrl-C (or max_runs)."""
    runs = 0
    seen = None
    try:
        while max_runs is None or runs < max_runs:
            current = _snapshot(exercise)
            if current != seen:
                seen = current
                runs += 1
                print(f"\n== workbook watch: {exercise.folder} (Ctrl-C to stop)", flush=True)
                subprocess.call(
                    [sys.executable, "-m", "pytest", f"exercises/{exercise.folder}", "-q",
                     "-p", "no:cacheprovider"],
                    cwd=metadata.ROOT,
                )
                print("== waiting for you to save a file...", flush=True)
            time.sleep(interval)
    except KeyboardInterrupt:
        print("\nStopped watching.")
    return 0


__all__ = ["diff", "hints", "next_hint", "reset", "watch"]
