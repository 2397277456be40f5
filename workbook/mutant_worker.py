"""The mutation check's warm worker: one per copy of the workbook, started inside that copy.

A fresh `python -m pytest` per wrong answer spends 1-2 s importing pytest and Django before
any test runs. A worker imports them once (watch.warm_up), then for each wrong answer the
parent has written into the copy it forks a child that runs the exercise's suite on the files
as they are now (watch.fork_run), exactly the command of the fresh process, and answers the
verdict. Nothing a child imports outlives it, and the warm parent refuses to serve if it has
imported an exercise or set Django up: then every child reads the learner's files from disk.
PYTHONDONTWRITEBYTECODE stays on, so no compiled file of one mutant is reused by the next.

Started as `python -m workbook.mutant_worker FOLDER OUTPUT TIMEOUT` with the copy as its
working directory, so that `workbook` and `exercises` are the copy's, never the main tree's.
Protocol, one JSON line each way: once warm, the worker says {"ready": true} (or
{"error": why}); for each {"extra": [pytest's arguments]} the parent sends, it answers {"code": N, "failed": LINE or
null, "tail": TEXT} or, for a suite over TIMEOUT seconds, {"timeout": true}.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

# What the fresh process passes to pytest besides the exercise's folder and -q.
PYTEST_EXTRA = ("-x", "--no-header", "--tb=line")
POLL_SECONDS = 0.01


def first_failed(output):
    """The first "FAILED " line of pytest's output without its prefix, or None."""
    for line in output.splitlines():
        if line.startswith("FAILED "):
            return line.removeprefix("FAILED ")
    return None


# The parent's side


class Worker:
    """A warm worker in WORKDIR, started at its first run (a check whose runs are all
    replaced, as in tests, starts none) and again after it died."""

    def __init__(self, workdir, folder, timeout, env):
        self.workdir, self.folder, self.timeout, self.env = Path(workdir), folder, timeout, env
        self.log = self.workdir.with_name(self.workdir.name + ".worker.log")
        self.output = self.workdir.with_name(self.workdir.name + ".out")
        self.process = None

    def run(self, extra=()):
        """Run the suite on the files now in the copy, with EXTRA arguments to pytest: (exit
        code or None on timeout, first FAILED line, tail of the output)."""
        try:
            if self.process is None or self.process.poll() is not None:
                self._start()
            self.process.stdin.write(json.dumps({"extra": list(extra)}) + "\n")
            self.process.stdin.flush()
            reply = self._read()
        except (OSError, ValueError) as error:
            return 3, None, f"the warm worker stopped ({error}): {self._log_tail()}"
        if reply.get("timeout"):
            return None, None, ""
        return reply["code"], reply["failed"], reply["tail"]

    def _start(self):
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "workbook.mutant_worker", self.folder, str(self.output),
                 str(self.timeout)],
                cwd=self.workdir, env=self.env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=log, text=True,
            )
        reply = self._read()
        if not reply.get("ready"):
            raise OSError(reply.get("error", "it did not start"))

    def _read(self):
        line = self.process.stdout.readline()
        if not line:
            raise OSError("it exited")
        return json.loads(line)

    def _log_tail(self):
        try:
            return self.log.read_text().strip()[-600:]
        except OSError:
            return ""

    def close(self):
        """End the worker: its stdin closes, it kills any run still going and exits."""
        if self.process is None:
            return
        self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process.stdout.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# The worker's side


def not_cold(root):
    """Why forked runs here could test something else than the copy's files now, or None."""
    from django.apps import apps
    from django.conf import settings

    from . import metadata

    if metadata.ROOT != root:
        return f"workbook was imported from {metadata.ROOT}, not from the copy {root}"
    if not sys.dont_write_bytecode:
        return "PYTHONDONTWRITEBYTECODE is off: a mutant could reuse another's compiled file"
    loaded = sorted(m for m in sys.modules if m == "exercises" or m.startswith("exercises."))
    if loaded:
        return f"the warm process imported {', '.join(loaded)}: every run would reuse it"
    if settings.configured or apps.apps_ready:
        return "the warm process set Django up: every run would reuse its apps and settings"
    return None


def wait(pid, timeout):
    """The child's exit code, or None when it ran over TIMEOUT s: then its whole process
    group is killed (a suite may have started processes of its own). Polled, which any
    POSIX system can do (no pidfd on macOS)."""
    deadline = time.monotonic() + timeout
    while True:
        # Not reaped yet (WNOWAIT): until it is, its pid, the group's id, is not reused.
        if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
            kill_group(pid)  # what the run started and left behind
            _, status = os.waitpid(pid, 0)
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            kill_group(pid)
            os.waitpid(pid, 0)
            return None
        time.sleep(POLL_SECONDS)


def kill_group(pid):
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def judge(exercise, output, timeout, extra=()):
    """One run of the suite in a fresh fork: the reply to the parent."""
    from . import watch

    pid = watch.fork_run(exercise, (*PYTEST_EXTRA, *extra), output=output, own_group=True)
    try:
        code = wait(pid, timeout)
    except BaseException:
        kill_group(pid)  # stopped (Ctrl-C, the parent gone): leave no run behind
        raise
    if code is None:
        return {"timeout": True}
    text = Path(output).read_text(errors="replace")
    return {"code": code, "failed": first_failed(text), "tail": text.strip()[-600:]}


def main(argv):
    folder, output, timeout = argv[0], argv[1], float(argv[2])
    # Replies go to a private copy of stdout; anything else printed goes to the log.
    replies = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)

    def say(message):
        replies.write(json.dumps(message) + "\n")
        replies.flush()

    from . import metadata, watch

    watch.warm_up()
    problem = not_cold(Path.cwd().resolve())
    exercise = metadata.find(folder)
    if problem or exercise is None:
        say({"error": problem or f"no exercise {folder!r}"})
        return 1
    say({"ready": True})
    for line in sys.stdin:
        say(judge(exercise, output, timeout, json.loads(line)["extra"]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
