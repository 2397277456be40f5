"""`workbook class grade`: grade a whole class, each submission apart from the others.

A submission is a learner's clone (a folder or a git URL) or a folder of their exercise
folders. Only the files a learner is meant to edit are taken from it, into a pristine copy of
this workbook: its tests, its plugin and its settings, never the learner's. Each exercise's
suite runs there in a process of its own, with a time limit, inside bubblewrap where the
machine has it (no network; the instructor's workbook, the other submissions and the results
hidden; the copy and the rest of the machine read-only; a scratch folder writable). The
reference answers are graded first, the same way: they must pass, and they say which tests
there are and what each is worth.

What this cannot do: code that runs inside the process that grades it can rewrite that
process's report. Two things narrow it: a report must agree with what pytest printed before
the process ended, and a submission whose files reach for the grading machinery is flagged
for a human look (`scan`).
"""

import ast
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from . import gitrepo, metadata, mutants, progress

MAX_FILE = 256 * 1024  # bytes: a learner file larger than this is not taken
OUTPUT_KEPT = 64 * 1024  # bytes of each run's output kept at its start, and again at its end
CLONE_TIMEOUT = 120
# What a graded copy leaves out: what every copy of the workbook does, and the answers.
NOT_COPIED = shutil.ignore_patterns(*mutants.LEFT_OUT, ".github", "solutions")
REFERENCE = "reference answers"
STACKS_VAR = "WORKBOOK_STACKS_AFTER"  # seconds: see pytest_plugin.pytest_load_initial_conftests
FILE_LIMIT = 256  # MiB: the largest file a suite may write (its captured output included)


def limits(file_limit):
    """util-linux's prlimit (a preexec_fn is not safe in a threaded grader): no core files,
    files up to FILE_LIMIT MiB, 6 GiB of address space."""
    return ["prlimit", "--core=0", f"--fsize={file_limit * 2**20}", f"--as={6 * 2**30}", "--"]


class ClassError(Exception):
    """Bad input or a workbook that cannot grade: said in one line."""


@dataclass
class Submission:
    name: str  # the learner, as their results are filed
    source: str  # what the instructor named
    files: dict = field(default_factory=dict)  # exercises/<folder>/<file> -> bytes
    notes: list = field(default_factory=list)  # files that were not taken, and why
    problem: str = ""  # why nothing could be taken at all
    named: bool = False  # named by the instructor, not from its path or URL


# Reading submissions


def is_url(text):
    return bool(re.match(r"^[a-z][a-z0-9+.-]*://", text)) or bool(
        re.match(r"^[\w.-]+@[\w.-]+:", text))


def learner_name(source, parts=1):
    """A name from a path or URL: its last part (or PARTS parts), without `.git`."""
    if not is_url(source):
        source = str(Path(source).resolve())
    pieces = [p for p in re.split(r"[/:]", source.rstrip("/")) if p] or ["learner"]
    pieces[-1] = pieces[-1].removesuffix(".git")
    name = "-".join(pieces[-parts:])
    return re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".") or "learner"


def read_submission(source, exercises, scratch, name=None):
    """A Submission from a folder or a git URL (cloned into `scratch`), named NAME if given."""
    submission = Submission(name or learner_name(source), source, named=bool(name))
    if is_url(source):
        folder = Path(scratch) / "clone"
        try:
            done = subprocess.run(
                ["git", "-c", "protocol.ext.allow=never", "-c", "core.hooksPath=/dev/null",
                 "clone", "--quiet", "--depth", "1", "--no-tags", "--", source, str(folder)],
                capture_output=True, text=True, timeout=CLONE_TIMEOUT,
                env={**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true"},
            )
        except subprocess.TimeoutExpired:
            submission.problem = f"git clone did not finish in {CLONE_TIMEOUT} s"
            return submission
        if done.returncode != 0:
            said = done.stderr.strip().splitlines()
            fatal = [line for line in said if line.startswith("fatal:")] or said
            submission.problem = "git clone failed: " + (
                fatal[0].removeprefix("fatal: ") if fatal else "no reason given")
            return submission
    else:
        folder = Path(source)
        if not folder.is_dir():
            submission.problem = "no such folder"
            return submission
    base = folder / "exercises" if (folder / "exercises").is_dir() else folder
    if not any((base / e.folder).is_dir() for e in metadata.exercises()):
        submission.problem = ("no exercise folders in it (such as exercises/01_basic_action/ "
                              "or 01_basic_action/)")
        return submission
    root = base.resolve()
    for exercise in exercises:
        for name in exercise.learner_files:
            path = base / exercise.folder / name
            relative = f"exercises/{exercise.folder}/{name}"
            if not os.path.lexists(path):
                continue
            if path.is_symlink() or not path.resolve().is_relative_to(root):
                submission.notes.append(f"{relative}: a symbolic link, not taken")
            elif not path.is_file():
                submission.notes.append(f"{relative}: not a regular file, not taken")
            elif path.stat().st_size > MAX_FILE:
                submission.notes.append(f"{relative}: larger than {MAX_FILE // 1024} KB, not taken")
            else:
                submission.files[relative] = path.read_bytes()
    return submission


def reference_submission(exercises):
    """The reference answers, read as a learner's submission is."""
    files = {}
    for exercise in exercises:
        for name in exercise.learner_files:
            files[f"exercises/{exercise.folder}/{name}"] = (
                exercise.solution_path / name).read_bytes()
    return Submission(REFERENCE, "solutions/", files)


# What a human should look at: files that reach for the grading machinery

# Modules a learner's admin has no reason to import: they reach the process, the interpreter
# or the test run itself.
SUSPECT_MODULES = {
    "atexit": "runs code when the grading process ends, after pytest has reported",
    "signal": "handles or sends signals to the grading process",
    "ctypes": "reaches the interpreter's memory",
    "gc": "walks every object of the grading process",
    "inspect": "looks at the callers' frames (the test run)",
    "importlib": "imports or reloads modules by name",
    "builtins": "replaces built-in functions",
    "subprocess": "starts other programs",
    "multiprocessing": "starts other processes",
    "socket": "opens network connections",
    "faulthandler": "hooks into crashes of the grading process",
    "pytest": "reaches the test framework that grades it",
    "_pytest": "reaches the test framework's internals",
    "pluggy": "reaches pytest's plugin machinery",
    "workbook": "reaches the workbook's grading machinery",
    "shutil": "copies or deletes files",
    "tempfile": "creates files outside the answer",
}
SUSPECT_ATTRIBUTES = {
    ("sys", "modules"): "replaces loaded modules (the tests' or the grader's)",
    ("sys", "_getframe"): "looks at the callers' frames (the test run)",
    ("sys", "exit"): "ends the grading process",
    ("sys", "settrace"): "traces the test run",
    ("sys", "setprofile"): "traces the test run",
    ("sys", "meta_path"): "changes how modules are found",
    ("sys", "path_hooks"): "changes how modules are found",
    ("sys", "argv"): "reads the grader's command line",
    ("sys", "excepthook"): "hooks into the grading process's errors",
    ("os", "_exit"): "ends the grading process at once",
    ("os", "kill"): "sends signals to processes",
    ("os", "fork"): "starts processes",
    ("os", "system"): "starts other programs",
    ("os", "popen"): "starts other programs",
    ("os", "environ"): "reads or changes the grader's environment",
    ("os", "remove"): "deletes files",
    ("os", "unlink"): "deletes files",
    ("os", "rename"): "moves files",
    ("os", "replace"): "moves files",
}
SUSPECT_CALLS = {
    "exec": "runs code built at run time",
    "eval": "runs code built at run time",
    "compile": "builds code at run time",
    "__import__": "imports modules by name",
    "open": "opens files (an admin action answers with responses, not files)",
    "globals": "reaches the module's namespace as a dict",
}
SUSPECT_TEXT = re.compile(
    r"results\.json|workbook[-_]report|WORKBOOK_|PYTEST_|conftest|junit", re.IGNORECASE)


@dataclass(frozen=True)
class Flag:
    file: str
    line: int
    what: str
    why: str

    def __str__(self):
        return f"{self.file}:{self.line}: {self.what}: {self.why}"


def scan(files):
    """Flags for the learner's Python files: what in them reaches for the grading machinery."""
    flags = []
    for relative, data in sorted(files.items()):
        if not relative.endswith(".py"):
            continue
        try:
            tree = ast.parse(data, relative)
        except (SyntaxError, ValueError):
            continue  # it fails its tests as it is: nothing to hide
        flags += _scan_tree(relative, tree)
    return sorted(set(flags), key=lambda f: (f.file, f.line, f.what))


def _scan_tree(relative, tree):
    flags = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""] if node.level == 0 else []
                names += [f"{node.module}.{a.name}" for a in node.names if node.level == 0]
            else:
                names = [a.name for a in node.names]
            for name in names:
                top = name.split(".")[0]
                if top in SUSPECT_MODULES:
                    flags.append(Flag(relative, node.lineno, f"import {name.rstrip('.')}",
                                      SUSPECT_MODULES[top]))
                elif name.count(".") == 1 and tuple(name.split(".")) in SUSPECT_ATTRIBUTES:
                    flags.append(Flag(relative, node.lineno, f"from {top} import "
                                      f"{name.split('.')[1]}",
                                      SUSPECT_ATTRIBUTES[tuple(name.split("."))]))
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            key = (node.value.id, node.attr)
            if key in SUSPECT_ATTRIBUTES:
                flags.append(Flag(relative, node.lineno, ".".join(key), SUSPECT_ATTRIBUTES[key]))
            elif node.attr.startswith("__") and node.attr not in ("__init__", "__name__",
                                                                   "__class__", "__str__"):
                flags.append(Flag(relative, node.lineno, f"{node.value.id}.{node.attr}",
                                  "reaches an object's internals"))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id in SUSPECT_CALLS:
                flags.append(Flag(relative, node.lineno, f"{node.func.id}()",
                                  SUSPECT_CALLS[node.func.id]))
        elif isinstance(node, ast.Name) and node.id == "__builtins__":
            flags.append(Flag(relative, node.lineno, "__builtins__", "replaces built-ins"))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            found = SUSPECT_TEXT.search(node.value)
            if found:
                flags.append(Flag(relative, node.lineno, f"the text {found[0]!r}",
                                  "names a file or setting of the grading machinery"))
    return flags


# Running a suite apart


def bubblewrap():
    """bwrap's path when it can make a sandbox on this machine, else (None, why not)."""
    path = shutil.which("bwrap")
    if path is None:
        return None, "bubblewrap (bwrap) is not installed (Debian: apt-get install bubblewrap)"
    probe = subprocess.run([path, "--unshare-all", "--ro-bind", "/", "/", "--", "true"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        return None, f"bwrap cannot make a sandbox here: {probe.stderr.strip()}"
    return path, ""


@dataclass
class Run:
    status: str  # graded, timeout, crashed, forged
    seconds: float
    report: dict | None = None
    output: str = ""
    detail: str = ""


class Grader:
    """Grades submissions in pristine copies of the workbook, in parallel."""

    def __init__(self, exercises, timeout, sandbox, workdir, hidden=(), file_limit=FILE_LIMIT):
        self.exercises = exercises
        self.timeout = timeout
        self.file_limit = file_limit
        self.bwrap = sandbox  # bwrap's path, or None to run without a sandbox
        self.workdir = Path(workdir)
        self.hidden = [Path(p) for p in hidden]  # folders a submission must not see
        self.template = self.workdir / "template"
        self._make_template()
        self.baseline = None

    def _make_template(self):
        """The workbook as a learner gets it: untouched stubs, no answers, no history."""
        shutil.copytree(metadata.ROOT, self.template, ignore=NOT_COPIED)
        for path in gitrepo.stub_blobs():
            target = self.template / path
            if gitrepo.is_stub(path, target.read_bytes()):
                continue
            try:
                target.write_bytes(gitrepo.pristine_stub(path))
            except gitrepo.GitError as error:
                raise ClassError(f"{path} is not the stub any more, and {error}") from None

    def command(self, copy, scratch, argv):
        if self.bwrap is None:
            return argv
        hide = []
        for folder in self.hidden:
            if folder.is_dir():
                hide += ["--tmpfs", str(folder)]
        venv = Path(sys.prefix)
        if venv.is_relative_to(metadata.ROOT):
            # The instructor's workbook is hidden; only its Python environment is seen.
            hide += ["--tmpfs", str(metadata.ROOT), "--ro-bind", str(venv), str(venv)]
        return [
            self.bwrap, "--die-with-parent", "--new-session", "--unshare-all",
            "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp",
            *hide, "--tmpfs", str(self.workdir),
            "--ro-bind", str(copy), str(copy), "--bind", str(scratch), str(scratch),
            "--chdir", str(copy), "--", *argv,
        ]

    def run_suite(self, copy, scratch, exercise):
        report = scratch / f"{exercise.folder}.json"
        argv = [sys.executable, "-m", "pytest", f"exercises/{exercise.folder}", "-q",
                "--color=no", "--tb=short", "-p", "no:cacheprovider",
                f"--workbook-report={report}"]
        tmp = scratch / "tmp"
        tmp.mkdir(exist_ok=True)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8",
            "HOME": str(scratch), "TMPDIR": "/tmp" if self.bwrap else str(tmp),
            "PYTHONDONTWRITEBYTECODE": "1", "WORKBOOK_DB": str(scratch / "db.sqlite3"),
            # The plugin prints every thread's stack just before the time limit: where it hung.
            STACKS_VAR: str(max(self.timeout - 2, self.timeout * 0.9)),
        }
        started = time.monotonic()
        process = subprocess.Popen(
            [*limits(self.file_limit), *self.command(copy, scratch, argv)], cwd=copy, env=env,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        output = _Output(process.stdout)
        try:
            code = process.wait(self.timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            output.join()
            text = output.text()
            where = _where_it_hung(text)
            return Run("timeout", time.monotonic() - started, output=text,
                       detail=f"its tests did not finish in {self.timeout:g} s"
                       + (f"; it was running {where} when stopped" if where else ""))
        output.join()
        seconds = time.monotonic() - started
        text = output.text()
        data = _read_report(report)
        if data is None:
            # bwrap reports its child's death by signal N as exit status 128 + N.
            number = -code if code < 0 else code - 128 if self.bwrap and code > 128 else 0
            try:
                why = f"killed by {signal.Signals(number).name}" if number else ""
            except ValueError:
                why = ""
            why = why or f"exit status {code}"
            return Run("crashed", seconds, output=text,
                       detail=f"the test run ended without a report ({why})")
        disagreement = _disagrees(data, text)
        if disagreement:
            return Run("forged", seconds, output=text,
                       detail=f"its report was changed after pytest finished: {disagreement}")
        return Run("graded", seconds, report=data, output=text)

    def grade(self, submission):
        """{results.json's content, output} for one submission."""
        graded_at = datetime.now(UTC).isoformat(timespec="seconds")
        flags = scan(submission.files)
        runs = {}
        if not submission.problem:
            home = Path(tempfile.mkdtemp(prefix="submission-", dir=self.workdir))
            try:
                copy, scratch = home / "workbook", home / "scratch"
                shutil.copytree(self.template, copy)
                scratch.mkdir()
                for exercise in self.exercises:
                    # Django imports every app's admin.py: each suite runs with this
                    # exercise's files only, the others' stubs, so that a hang or a crash
                    # in one file costs no other exercise its points.
                    mine = {relative: data for relative, data in submission.files.items()
                            if relative.startswith(f"exercises/{exercise.folder}/")}
                    for relative, data in mine.items():
                        (copy / relative).write_bytes(data)
                    runs[exercise.folder] = self.run_suite(copy, scratch, exercise)
                    for relative in mine:
                        shutil.copyfile(self.template / relative, copy / relative)
            finally:
                shutil.rmtree(home, ignore_errors=True)
        return self._results(submission, runs, flags, graded_at)

    def _results(self, submission, runs, flags, graded_at):
        tests = []
        for exercise in self.exercises:
            run = runs.get(exercise.folder)
            reported = {}
            if run is not None and run.report is not None:
                reported = {t.get("nodeid"): t for t in run.report.get("tests", [])
                            if isinstance(t, dict)}
            expected = self.baseline[exercise.folder] if self.baseline else list(reported.values())
            for test in expected:
                mine = reported.get(test["nodeid"])
                if mine is not None and mine.get("outcome") in ("passed", "failed", "error",
                                                                "skipped"):
                    outcome, message = mine["outcome"], str(mine.get("message") or "")
                else:
                    outcome = "error"
                    message = (submission.problem if run is None
                               else f"{exercise.folder}: {run.detail or 'not reported'}")
                if self.baseline and outcome == "skipped":
                    outcome, message = "error", message or "skipped"
                tests.append({**test, "outcome": outcome, "message": message})
        report = {"tests": tests, "broken": {}}
        for run in runs.values():
            if run.report:
                report["broken"].update(run.report.get("broken") or {})
        graded = progress.results(report)
        chosen = {e.folder for e in self.exercises}
        graded["exercises"] = [e for e in graded["exercises"] if e["exercise"] in chosen]
        trouble = [f"{folder}: {run.status}, {run.detail}" for folder, run in runs.items()
                   if run.status != "graded"]
        if submission.problem:
            graded["status"] = "error"
            graded["message"] = f"the submission could not be read: {submission.problem}"
        elif trouble:
            graded["status"] = "error"
            graded["message"] = "; ".join(trouble)
        graded["workbook"] = {
            "learner": submission.name,
            "submission": submission.source,
            "graded_at": graded_at,
            "sandbox": "bubblewrap" if self.bwrap else "none",
            "runs": {folder: {"status": run.status, "seconds": round(run.seconds, 1),
                              "detail": run.detail} for folder, run in runs.items()},
            "files": sorted(submission.files),
            "not_taken": submission.notes,
            "flags": [vars(flag) for flag in flags],
        }
        output = "\n".join(f"== {folder}: {run.status}\n{run.output}"
                           for folder, run in runs.items())
        return graded, output

    def grade_reference(self):
        """Grade the reference answers: they must pass, and say what each test is worth."""
        reference = reference_submission(self.exercises)
        graded, output = self.grade(reference)
        failing = [t for t in graded["tests"] if t["status"] != "pass"]
        if failing or graded["status"] != "pass":
            first = failing[0] if failing else {"name": "", "message": graded["message"]}
            raise ClassError(
                "the reference answers do not pass in a graded copy of this workbook, so no "
                f"submission can be graded: {first['name']} {first['message'] or ''}".strip()
                + f"\n{output[-3000:]}")
        self.baseline = {e.folder: [] for e in self.exercises}
        for test in graded["tests"]:
            self.baseline[test["exercise"]].append({
                "nodeid": test["name"], "exercise": test["exercise"],
                "task": test["task_id"], "points": test["max_points"],
            })
        return graded


class _Output:
    """Reads a child's output as it comes, keeping its start and its end (bounded memory)."""

    def __init__(self, stream):
        self.head, self.tail, self.dropped = bytearray(), bytearray(), 0
        self.thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self.thread.start()

    def _read(self, stream):
        for chunk in iter(lambda: stream.read1(65536), b""):
            room = OUTPUT_KEPT - len(self.head)
            self.head += chunk[:max(room, 0)]
            self.tail += chunk[max(room, 0):]
            if len(self.tail) > OUTPUT_KEPT:
                self.dropped += len(self.tail) - OUTPUT_KEPT
                del self.tail[:len(self.tail) - OUTPUT_KEPT]
        stream.close()

    def join(self):
        self.thread.join(10)

    def text(self):
        middle = f"\n[... {self.dropped} bytes of output left out ...]\n" if self.dropped else ""
        return (bytes(self.head).decode(errors="replace") + middle
                + bytes(self.tail).decode(errors="replace"))


def _where_it_hung(output):
    """The learner's line that the stacks printed before the time limit show, or ''."""
    stacks = output[output.rfind("(most recent call first)"):] if "(most recent call first)" in (
        output) else ""
    found = re.search(r'File "[^"]*/(exercises/[^"]+)", line (\d+)', stacks)
    return f"{found[1]}, line {found[2]}" if found else ""


def _read_report(path):
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("tests"), list) else None


SUMMARY = re.compile(r"^(?:=+ )?((?:\d+ (?:failed|passed|skipped|errors?|deselected|xfailed|"
                     r"xpassed|warnings?)(?:, )?)+) in [\d.]+s", re.MULTILINE)


def _disagrees(report, output):
    """How the report claims more than pytest's own summary line said, or ''.

    Only a report better than pytest's count is suspect: a test that passed and then failed
    its teardown is one "passed" and one "error" to pytest, and an error in the report."""
    lines = SUMMARY.findall(output)
    if len(lines) > 1:
        return f"pytest printed {len(lines)} summary lines, not one"
    printed = {}
    for count, word in re.findall(r"(\d+) (\w+)", lines[0] if lines else ""):
        printed[{"errors": "error"}.get(word, word)] = int(count)
    counted = {}
    for test in report["tests"]:
        if isinstance(test, dict):
            counted[test.get("outcome")] = counted.get(test.get("outcome"), 0) + 1
    if counted.get("passed", 0) > printed.get("passed", 0):
        return (f"the report says {counted.get('passed', 0)} passed, pytest printed "
                f"{printed.get('passed', 0)}")
    if counted.get("failed", 0) + counted.get("error", 0) < printed.get("failed", 0):
        return (f"the report says {counted.get('failed', 0)} failed, pytest printed "
                f"{printed.get('failed', 0)}")
    return ""


# The command


def unique_names(submissions):
    """Tell learners apart whatever the order they are listed in: names that collide take
    their parents' names too (bob-workbook, carol-workbook), then a number in the order of
    their sources. Returns what it renamed, to be said."""
    renamed = {}
    for parts in (2, 3, None):
        groups = {}
        for submission in submissions:
            groups.setdefault(submission.name, []).append(submission)
        for name, group in groups.items():
            if len(group) == 1:
                continue
            if sum(s.named for s in group) > 1:
                raise ClassError(f"two submissions are named {name!r}")
            ordered = sorted((s for s in group if not s.named), key=lambda s: s.source)
            for number, submission in enumerate(ordered, start=1):
                submission.name = (learner_name(submission.source, parts) if parts
                                   else f"{name}-{number}")
                renamed[submission.source] = submission.name
    return [f"{source} is graded as {name} (its last name is another's too)"
            for source, name in renamed.items()]


def grade_class(sources, out, exercises, timeout, jobs, sandbox_mode, show,
                file_limit=FILE_LIMIT):
    """Grade every (name or None, source) into OUT/<learner>/results.json; returns the
    class's rows."""
    out = Path(out).resolve()
    bwrap, why_not = bubblewrap() if sandbox_mode != "off" else (None, "--sandbox off")
    if bwrap is None and sandbox_mode == "required":
        raise ClassError(f"no sandbox: {why_not}")
    show.sandbox(bwrap is not None, why_not)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="workbook-class-") as workdir:
        grader = Grader(exercises, timeout, bwrap, workdir, hidden=[out], file_limit=file_limit)
        reading = Path(workdir) / "reading"
        reading.mkdir()
        submissions = []
        for index, (name, source) in enumerate(sources):
            scratch = reading / str(index)
            scratch.mkdir()
            submissions.append(read_submission(source, exercises, scratch, name))
        for line in unique_names(submissions):
            show.console.print(line)
        with show.progress(len(submissions) + 1) as advance:
            grader.grade_reference()
            advance(REFERENCE, "pass")
            rows = []

            def one(submission):
                graded, output = grader.grade(submission)
                folder = out / submission.name
                folder.mkdir(parents=True, exist_ok=True)
                (folder / "results.json").write_text(json.dumps(graded, indent=2) + "\n")
                (folder / "output.txt").write_text(output)
                advance(submission.name, graded["status"])
                return row(graded)

            with ThreadPoolExecutor(max(1, jobs)) as pool:
                rows = list(pool.map(one, submissions))
    (out / "class.json").write_text(json.dumps(rows, indent=2) + "\n")
    return rows


def row(graded):
    """One learner's line of the class table."""
    info = graded["workbook"]
    trouble = [f"{folder} {run['status']}" for folder, run in info["runs"].items()
               if run["status"] != "graded"]
    return {
        "learner": info["learner"], "status": graded["status"], "points": graded["points"],
        "max_points": graded["max_points"], "percentage": graded["percentage"],
        "runs": trouble, "flags": len(info["flags"]), "not_taken": len(info["not_taken"]),
        "message": graded["message"],
        "unread": (graded["message"] or "").startswith("the submission could not be read"),
    }


# What the instructor sees while it runs


class Show:
    """The sandbox line, a progress bar with the last learner graded, and the class table."""

    def __init__(self, console):
        self.console = console

    def sandbox(self, on, why_not):
        if on:
            self.console.print("Sandbox: bubblewrap (no network; the workbook read-only; "
                               "a scratch folder writable)")
        else:
            self.console.print(f"[bold red]No sandbox[/]: {why_not}. Submissions run as you, "
                               "with your files and network in reach.")

    @contextmanager
    def progress(self, total):
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeElapsedColumn)

        lock = threading.Lock()
        with Progress(TextColumn("grading"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), TextColumn("{task.description}"),
                      console=self.console) as bar:
            task = bar.add_task("the reference answers first", total=total)

            def advance(name, status):
                with lock:
                    bar.update(task, advance=1, description=f"{name}: {status}")

            yield advance


def show_rows(console, rows):
    from rich.table import Table

    table = Table(title=f"{len(rows)} submissions")
    for column in ("learner", "status", "points", "%", "needs a look"):
        table.add_column(column, justify="right" if column in ("points", "%") else "left")
    for entry in sorted(rows, key=lambda r: r["learner"]):
        look = list(entry["runs"])
        if entry["flags"]:
            look.append(f"{entry['flags']} flagged line{'s' * (entry['flags'] != 1)}")
        if entry["not_taken"]:
            look.append(f"{entry['not_taken']} file{'s' * (entry['not_taken'] != 1)} not taken")
        if entry["status"] == "error" and not entry["runs"]:
            look.append(entry["message"] or "")
        table.add_row(entry["learner"], entry["status"],
                      f"{entry['points']}/{entry['max_points']}", f"{entry['percentage']:g}",
                      "; ".join(look))
    console.print(table)
