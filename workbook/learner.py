"""The learner's own files: hints one at a time, a diff with the answer, and reset.

Nothing here deletes learner work: reset keeps a backup first, and state lives in .workbook/
(which git ignores).
"""

import difflib
import json
import os
import re
import shutil
import textwrap
from datetime import datetime

from . import gitrepo, metadata, progress

STATE_DIR = metadata.ROOT / ".workbook"
STATE = STATE_DIR / "state.json"
BACKUPS = STATE_DIR / "backups"


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


class LearnerError(Exception):
    """A problem with the learner's files or .workbook/, said in one line (exit status 2)."""


def _shown(path):
    """A path as the learner should read it: relative to the workbook when inside it."""
    try:
        return str(path.relative_to(metadata.ROOT))
    except ValueError:
        return str(path)


def _valid_state(state):
    """Whether `state` has the shape this module writes: hints shown, per exercise and task.

    An exercise's count may still be one number: the order of hints before they were per task.
    """
    if not isinstance(state, dict) or not isinstance(state.get("hints", {}), dict):
        return False
    for shown in state.get("hints", {}).values():
        if isinstance(shown, dict):
            if not all(isinstance(n, int) and not isinstance(n, bool) for n in shown.values()):
                return False
        elif not isinstance(shown, int) or isinstance(shown, bool):
            return False
    return True


def _state():
    """(state, notice): the saved state, and a line to show when it had to start over.

    A state file that is not what this module writes is kept aside, never deleted, and an
    empty state replaces it at once (so the learner is told once).
    """
    try:
        data = STATE.read_bytes()
    except FileNotFoundError:
        return {}, None
    except OSError as error:
        raise LearnerError(
            f"cannot read {_shown(STATE)} ({error.strerror}): move it away to start over"
        ) from None
    try:
        state = json.loads(data)
    except ValueError:  # not JSON, or not text at all
        state = None
    if _valid_state(state):
        return state, None
    kept = _unique(STATE.with_name("state-corrupt"), ".json", data=data)
    _save_state({})
    return {}, (
        f"{_shown(STATE)} was corrupt, so the hints you saw are forgotten and start over "
        f"(the bad file is kept as {_shown(kept)})."
    )


def _save_state(state):
    """Write the state whole or not at all: a crash mid-write cannot corrupt it."""
    try:
        STATE_DIR.mkdir(exist_ok=True)
        partial = STATE.with_name(STATE.name + ".partial")
        partial.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")
        os.replace(partial, STATE)
    except OSError as error:
        raise LearnerError(f"cannot write {_shown(STATE)} ({error.strerror})") from None


def _hints_shown(state, exercise, all_hints):
    """{task: hints of it shown} for `exercise`, read from either shape of the state."""
    shown = state.setdefault("hints", {}).get(exercise.folder, {})
    if isinstance(shown, int):
        # The old shape: the first `shown` hints in file order, whatever their task.
        counts = {}
        for task, _, _ in all_hints[:shown]:
            counts[str(task)] = counts.get(str(task), 0) + 1
        shown = counts
    state["hints"][exercise.folder] = shown
    return shown


def first_failing_task(exercise):
    """The first task of `exercise` with a test that does not pass; 0 when all pass.

    None when its tests could not run at all. Runs the exercise's graded suite quietly.
    """
    code, report, output = progress.run_suites(f"exercises/{exercise.folder}")
    if report is None:
        return None
    tests = [t for t in report["tests"]
             if t["exercise"] == exercise.folder and t["outcome"] != "skipped"]
    if not tests:
        return None
    failing = sorted(t["task"] for t in tests if t["outcome"] != "passed")
    return failing[0] if failing else 0


def next_hint(exercise, task=None):
    """Reveal one more hint of one task of `exercise`; return the lines to show.

    Without `task`, the first task whose tests fail (run now); with it, that task's.
    """
    all_hints = hints(exercise)
    state, notice = _state()
    lines = [notice, ""] if notice else []
    shown = _hints_shown(state, exercise, all_hints)
    number = exercise.number
    run = metadata.runnable
    if task is None:
        task = first_failing_task(exercise)
        if task == 0:
            return lines + [
                f"Every test of {exercise.folder} passes: no hint needed.",
                f"A task's hints all the same: {run(f'workbook hint {number}.T')} (T from 1 "
                f"to {len(exercise.tasks)}); the answer: {run(f'workbook diff {number}')}",
            ]
        if task is None:
            unfinished = [t for t in range(1, len(exercise.tasks) + 1)
                          if shown.get(str(t), 0) < sum(h[0] == t for h in all_hints)]
            task = unfinished[0] if unfinished else 1
            lines.append(f"(Your tests could not run, see `{run(f'workbook test {number}')}`; "
                         f"task {task} is the first with hints left.)")
        else:
            lines.append(f"Task {task} is the first of {exercise.folder} with a failing test.")
    mine = [text for t, _, text in all_hints if t == task]
    title = exercise.tasks[task - 1]
    seen = shown.get(str(task), 0)
    if seen >= len(mine):
        return lines + [
            f"You have seen all {len(mine)} hints of task {task} ({title}).",
            f"Compare your code with the answer: {run(f'workbook diff {number}')}",
        ]
    shown[str(task)] = seen + 1
    _save_state(state)
    left = len(mine) - seen - 1
    return lines + [
        f"Hint {seen + 1} of {len(mine)}, task {task} ({title}):",
        "",
        textwrap.fill(mine[seen], width=88, initial_indent="  ", subsequent_indent="  "),
        "",
        (f"Still stuck? The next one: {run(f'workbook hint {number}.{task}')} ({left} left)"
         if left else f"That was task {task}'s last hint. Still stuck? The answer: "
         f"{run(f'workbook diff {number}')}"),
    ]


def diff(exercise):
    """Your files against the reference answer, as one unified diff ('' when they match)."""
    for name in exercise.learner_files:
        if not (exercise.solution_path / name).exists():
            raise LearnerError(
                f"no reference answer to compare with: solutions/{exercise.folder}/{name} is "
                "missing (git checkout -- solutions/ brings it back)"
            )
    chunks = []
    current = _read_learner_files(exercise)
    for name in exercise.learner_files:
        relative = f"exercises/{exercise.folder}/{name}"
        if current[name] is None:
            raise LearnerError(f"{relative} is missing: "
                               f"`{metadata.runnable(f'workbook reset {exercise.number}')}` "
                               "puts the stub back (and keeps your other files)")
        try:
            yours = current[name].decode()
        except UnicodeDecodeError as error:
            raise LearnerError(f"{relative} is not UTF-8 text (byte {error.start}): save it "
                               "as UTF-8, as Python and Django expect") from None
        answer = exercise.solution_path / name
        chunks += difflib.unified_diff(
            yours.splitlines(keepends=True),
            answer.read_text().splitlines(keepends=True),
            fromfile=f"exercises/{exercise.folder}/{name} (yours)",
            tofile=f"solutions/{exercise.folder}/{name} (answer)",
        )
    return "".join(chunks)


BACKUP_NAME = re.compile(r"(\d{8}-\d{6})(?:-(\d+))?")


def _unique(base, suffix="", data=None):
    """A new path base+suffix (then base-2+suffix, ...): a folder, or a file holding `data`.

    Created exclusively, so two calls, in the same second or at once, never share one.
    """
    for n in range(1, 10_000):
        path = base.with_name(base.name + (f"-{n}" if n > 1 else "") + suffix)
        try:
            if data is None:
                path.mkdir(parents=True)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                with open(path, "xb") as f:
                    f.write(data)
            return path
        except FileExistsError:
            continue
    raise LearnerError(f"too many files named {_shown(base)}-N{suffix}: move some away")


def _read_learner_files(exercise):
    """{name: bytes or None when missing} of the exercise's learner files, or a LearnerError.

    Everything a command checks before it writes: the folder is there, each file readable.
    """
    folder = f"exercises/{exercise.folder}"
    if not exercise.path.is_dir():
        raise LearnerError(
            f"{folder}/ is missing: bring it back with `git checkout HEAD -- {folder}`, "
            "then run this command again"
        )
    found = {}
    for name in exercise.learner_files:
        path = exercise.path / name
        try:
            found[name] = path.read_bytes()
        except FileNotFoundError:
            found[name] = None
        except OSError as error:
            raise LearnerError(
                f"cannot read {folder}/{name} ({error.strerror}): make it a readable file, "
                "then run this command again"
            ) from None
    return found


def _back_up(exercise, files):
    """Copy `files` ({name: bytes}) byte for byte into a new backup folder; return it.

    On any error nothing is left behind and a LearnerError says why.
    """
    backup = None
    try:
        backup = _unique(BACKUPS / exercise.folder / datetime.now().strftime("%Y%m%d-%H%M%S"))
        for name, data in files.items():
            saved = backup / name
            saved.parent.mkdir(parents=True, exist_ok=True)
            with open(saved, "xb") as f:
                f.write(data)
    except OSError as error:
        if backup is not None:
            shutil.rmtree(backup, ignore_errors=True)
        raise LearnerError(
            f"cannot back your files up in {_shown(BACKUPS)} ({error.strerror}): nothing was "
            "changed"
        ) from None
    return backup


def _write(exercise, files, done):
    """Write `files` ({name: bytes}) into the exercise; `done` says what is safe already."""
    for name, data in files.items():
        path = exercise.path / name
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        except OSError as error:
            raise LearnerError(
                f"cannot write exercises/{exercise.folder}/{name} ({error.strerror}); {done}"
            ) from None


def _replace(exercise, write, keep, yours, what_became):
    """Back up `keep` ({name: bytes}) in a new folder, then write `write` ({name: bytes}).

    Returns (the backup folder or None, lines saying where each file of yours went and what
    each written file is now, `what_became(name)`).
    """
    backup = _back_up(exercise, keep) if keep else None
    _write(exercise, write,
           f"your versions are in {_shown(backup)}/" if backup else "nothing of yours was lost")
    lines = []
    for name in write:
        relative = f"exercises/{exercise.folder}/{name}"
        if name in keep:
            lines.append(f"{relative}: {yours} is saved as {_shown(backup / name)}")
        lines.append(f"{relative}: {what_became(name)}")
    return backup, lines


def backups(exercise):
    """The exercise's backup folders, oldest first."""
    folder = BACKUPS / exercise.folder
    found = [path for path in folder.iterdir() if path.is_dir() and
             BACKUP_NAME.fullmatch(path.name)] if folder.is_dir() else []
    return sorted(found, key=lambda path: (BACKUP_NAME.fullmatch(path.name)[1],
                                           int(BACKUP_NAME.fullmatch(path.name)[2] or 1)))


def reset(exercise):
    """Put the stubs back; keep your versions in a new backup folder. Returns lines to show.

    Everything is checked (the folder, each file, git's copy of each stub) before anything is
    written; backups are the files' exact bytes, whatever their encoding or line endings.
    """
    current = _read_learner_files(exercise)
    stubs = {name: gitrepo.pristine_stub(f"exercises/{exercise.folder}/{name}")
             for name in exercise.learner_files}
    lines, keep, write = [], {}, {}
    for name in exercise.learner_files:
        relative = f"exercises/{exercise.folder}/{name}"
        mine = current[name]
        if mine is not None and gitrepo.is_stub(relative, mine):
            lines.append(f"{relative} is already the original stub.")
            continue
        if mine is not None:
            keep[name] = mine
        write[name] = stubs[name]
    if not write:
        return lines
    backup, replaced = _replace(exercise, write, keep, "your version",
                                lambda name: "back to the original stub.")
    lines += replaced
    if backup:
        back = metadata.runnable(f"workbook restore {exercise.number}")
        lines.append(f"To put your version back: {back} (or: {back} {backup.name})")
    return lines


def restore(exercise, name=None):
    """Put a backup back (the newest, or the one named); back up the current files first.

    Returns lines to show. The current files are kept unless they are the stubs or the
    backup's own content, so that nothing is lost.
    """
    current = _read_learner_files(exercise)
    available = backups(exercise)
    where = _shown(BACKUPS / exercise.folder)
    if name is None:
        if not available:
            raise LearnerError(
                f"no backup of {exercise.folder} in {where}/ "
                f"(`{metadata.runnable(f'workbook reset {exercise.number}')}` makes one)"
            )
        backup = available[-1]
    else:
        base = os.path.basename(os.path.normpath(name))
        backup = BACKUPS / exercise.folder / base
        if base in ("", ".", "..") or not backup.is_dir():
            listed = ", ".join(path.name for path in available) or "none"
            raise LearnerError(f"no backup {name!r} in {where}/; there are: {listed}")
    try:
        saved = {n: (backup / n).read_bytes() for n in exercise.learner_files
                 if (backup / n).is_file()}
    except OSError as error:
        raise LearnerError(f"cannot read {_shown(backup)} ({error.strerror})") from None
    if not saved:
        raise LearnerError(f"{_shown(backup)}/ holds none of {exercise.folder}'s files")
    write = {n: data for n, data in saved.items() if current[n] != data}
    if not write:
        return [f"Your files in exercises/{exercise.folder} already match {_shown(backup)}/."]
    keep = {n: current[n] for n in write if current[n] is not None
            and not gitrepo.is_stub(f"exercises/{exercise.folder}/{n}", current[n])}
    mine, lines = _replace(exercise, write, keep, "your current version",
                           lambda n: f"restored from {_shown(backup / n)}")
    if mine:
        lines.append(
            f"To undo: {metadata.runnable(f'workbook restore {exercise.number} {mine.name}')}")
    return lines


__all__ = ["diff", "hints", "next_hint", "reset", "restore"]
