"""The mutation check's test selection: which tests call which of the learner's functions.

A wrong answer that changes only the bodies of some functions can fail only the tests that
call one of them: a test that never enters a function runs the same code whatever its body
says. The reference answer's own run records, for each test, the functions of the learner's
files it entered (with sys.monitoring, in every thread); each wrong answer then runs only the
tests that call what it changed (mutants.changed_functions says which, or that anything
else changed, and then every test runs).

Two options, for the exercise's suite run with `-p workbook.mutant_calls`:
  --mutant-calls=PATH  record {"tests": {nodeid: [qualname, ...]}, "everyone": [...],
                       "seconds": {nodeid: s}} there;
  --mutant-tests=PATH  run only the node ids listed in that JSON file, in its order (the
                       quickest first: a wrong answer's run stops at its first failure).
Calls made outside a test (on import) or in a fixture shared by several tests count for every
test that may see their effect; so does a function called once in the whole run, which may
be a one-time set-up whose result later tests reuse (Django builds its URLconf, and so calls
get_urls(), on the first request only). A test that starts a process (whose calls are out of
sight) is recorded as calling everything.
"""

import functools
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

EVERYTHING = "*"
# sys.monitoring's ids 3 and 4 belong to no standard tool (0-2: debugger, coverage, profiler).
FREE_TOOL_IDS = (3, 4)
# Audit events of a new process, whose calls sys.monitoring cannot see.
SPAWNS = {"subprocess.Popen", "os.fork", "os.forkpty", "os.posix_spawn", "os.system", "os.exec"}


def pytest_addoption(parser):
    parser.addoption("--mutant-calls", help="record which learner functions each test calls")
    parser.addoption("--mutant-tests", help="run only the node ids listed in this JSON file")


def pytest_configure(config):
    if config.getoption("mutant_calls"):
        recorder = Recorder(Path(config.getoption("mutant_calls")), learner_modules(config.args))
        config.pluginmanager.register(recorder.start(), "workbook-mutant-calls")


def learner_modules(args):
    """The real paths of the learner's Python files in the exercises whose suites run."""
    from . import metadata

    return {
        os.path.realpath(metadata.ROOT / "exercises" / exercise.folder / name)
        for exercise in map(metadata.find, (Path(a).name for a in args))
        if exercise is not None
        for name in exercise.learner_files if name.endswith(".py")
    }


def pytest_collection_modifyitems(config, items):
    path = config.getoption("mutant_tests")
    if path:
        keep_only(config, items, json.loads(Path(path).read_text()))


def keep_only(config, items, nodeids):
    """Keep the tests NODEIDS names, in that order; the others are deselected."""
    order = {nodeid: n for n, nodeid in enumerate(nodeids)}
    config.hook.pytest_deselected(items=[i for i in items if i.nodeid not in order])
    items[:] = sorted((i for i in items if i.nodeid in order), key=lambda i: order[i.nodeid])


@functools.lru_cache(maxsize=None)
def _real(filename):
    return os.path.realpath(filename)


class Recorder:
    """Who called what: a test, a shared fixture, or nobody (import time)."""

    def __init__(self, path, files):
        self.path, self.files = path, files
        self.owner = None  # the nodeid, or ("fixture", name), calls are counted for now
        self.calls = {}
        self.counts = Counter()  # qualname -> calls in the whole run
        self.seconds = {}
        self.fixtures = {}  # a shared fixture's name -> what its setup called

    def start(self):
        """Watch every function start (in every thread) and every new process."""
        self.tool = next(t for t in FREE_TOOL_IDS if sys.monitoring.get_tool(t) is None)
        sys.monitoring.use_tool_id(self.tool, "workbook mutant calls")
        sys.monitoring.register_callback(self.tool, sys.monitoring.events.PY_START, self._start)
        sys.monitoring.set_events(self.tool, sys.monitoring.events.PY_START)
        sys.addaudithook(self._audit)  # for the rest of the run: audit hooks stay
        return self

    def _start(self, code, offset):
        if _real(code.co_filename) not in self.files:
            return sys.monitoring.DISABLE
        self.calls.setdefault(self.owner, set()).add(code.co_qualname)
        self.counts[code.co_qualname] += 1
        return None

    def _audit(self, event, args):
        if event in SPAWNS and self.owner is not None:
            self.calls.setdefault(self.owner, set()).add(EVERYTHING)

    @pytest.hookimpl(wrapper=True)
    def pytest_fixture_setup(self, fixturedef, request):
        if fixturedef.scope == "function":
            return (yield)
        outer, self.owner = self.owner, ("fixture", fixturedef.argname)
        try:
            return (yield)
        finally:
            self.fixtures[fixturedef.argname] = self.calls.pop(self.owner, set())
            self.owner = outer

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item, nextitem):
        self.owner = item.nodeid
        self.calls.setdefault(item.nodeid, set())
        started = time.perf_counter()
        try:
            return (yield)
        finally:
            self.seconds[item.nodeid] = time.perf_counter() - started
            self.owner = None

    def pytest_sessionfinish(self, session):
        sys.monitoring.set_events(self.tool, 0)
        sys.monitoring.free_tool_id(self.tool)
        tests = {}
        for item in session.items:
            calls = set(self.calls.get(item.nodeid, ()))
            for name in item.fixturenames:
                calls |= self.fixtures.get(name, set())
            tests[item.nodeid] = sorted(calls)
        once = {name for name, count in self.counts.items() if count == 1}
        self.path.write_text(json.dumps({
            "tests": tests, "everyone": sorted(self.calls.get(None, set()) | once),
            "seconds": self.seconds,
        }))
