"""`workbook watch`'s run on two cores: the collected tests run in two forked halves.

A watched run is collected ahead (watch.Ahead); once the file is saved, it forks. The fork
runs the second half of the tests with no screen of its own and sends each test's report
(pytest's own serialization, as pytest-xdist does) and its warnings through a pipe; this
process runs the first half, then replays the second's reports through pytest's hooks, in
order. The terminal, the workbook's summary and --workbook-report thus see one run, in the
order a single process gives: the same dots, failures, grouping and exit status.
"""

import importlib
import json
import os
import warnings
from dataclasses import asdict

import pytest

SMALLEST = 4  # fewer tests run in one process: a fork would cost more than it saves


def cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        return os.cpu_count() or 1


def split(session):
    """Fork: the second half runs in the child, the first here (or None, nothing split)."""
    if session.testsfailed or len(session.items) < SMALLEST or cores() < 2:
        return
    cut = (len(session.items) + 1) // 2
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(reader)
        config = session.config
        config.pluginmanager.unregister(name="terminalreporter")
        config.option.workbook_report = None  # the first half writes the run's
        second = _Second(session, cut, os.fdopen(writer, "w"))
        config.pluginmanager.register(second)
        second.live = True  # warnings from now on: those before were replayed to it
    else:
        os.close(writer)
        session.config.pluginmanager.register(_First(session, cut, os.fdopen(reader), pid))


def _loop(session, items):
    """pytest's own test loop, over ITEMS only."""
    for index, item in enumerate(items):
        following = items[index + 1] if index + 1 < len(items) else None
        item.config.hook.pytest_runtest_protocol(item=item, nextitem=following)
        if session.shouldfail:
            raise session.Failed(session.shouldfail)
        if session.shouldstop:
            raise session.Interrupted(session.shouldstop)


class _Second:
    def __init__(self, session, cut, pipe):
        self.session, self.cut, self.pipe = session, cut, pipe
        self.live = False

    def _send(self, message):
        self.pipe.write(json.dumps(message) + "\n")
        self.pipe.flush()

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session):
        _loop(session, session.items[self.cut:])
        self._send({"done": True})
        return True

    def pytest_runtest_logreport(self, report):
        from . import pytest_plugin

        config = self.session.config
        result = config.stash[pytest_plugin._results_key].get(report.nodeid)
        self._send({
            "report": config.hook.pytest_report_to_serializable(config=config, report=report),
            "result": result and asdict(result),
        })

    def pytest_warning_recorded(self, warning_message, when, nodeid, location):
        if not self.live:
            return
        category = warning_message.category
        self._send({"warning": {
            "message": str(warning_message.message), "category": [
                category.__module__, category.__qualname__],
            "filename": warning_message.filename, "lineno": warning_message.lineno,
            "when": when, "nodeid": nodeid, "location": location,
        }})


class _First:
    def __init__(self, session, cut, pipe, pid):
        self.session, self.cut, self.pipe, self.pid = session, cut, pipe, pid

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session):
        _loop(session, session.items[:self.cut])
        done = False
        for line in self.pipe:
            message = json.loads(line)
            if "report" in message:
                self._replay(message["report"], message["result"])
            elif "warning" in message:
                self._warn(**message["warning"])
            done = done or message.get("done", False)
        _, status = os.waitpid(self.pid, 0)
        if not done:
            code = os.waitstatus_to_exitcode(status)
            terminal = session.config.pluginmanager.get_plugin("terminalreporter")
            if terminal:
                terminal.write_line(f"The second half of the tests stopped (exit {code}) "
                                    "before its end: run the tests again.", red=True)
            session.testsfailed += 1
        return True

    def _replay(self, data, result):
        from . import pytest_plugin

        config = self.session.config
        for key in ("location", "longrepr"):  # tuples, which JSON gives back as lists
            if isinstance(data.get(key), list):
                data[key] = tuple(data[key])
        report = config.hook.pytest_report_from_serializable(config=config, data=data)
        if result:
            result = pytest_plugin.Result(**result)
            pytest_plugin.keep_result(config, result)
            exercise = pytest_plugin.exercise_of(config.rootpath / report.nodeid.split("::")[0])
            # Grouped again here, across both halves (the fork could see its own only).
            if report.failed and report.when == "call" and exercise is not None:
                pytest_plugin._group_the_same_failure(config, exercise, result.task, report)
        if report.when == "setup":
            config.hook.pytest_runtest_logstart(nodeid=report.nodeid, location=report.location)
        config.hook.pytest_runtest_logreport(report=report)
        if report.when == "teardown":
            config.hook.pytest_runtest_logfinish(nodeid=report.nodeid, location=report.location)

    def _warn(self, message, category, filename, lineno, when, nodeid, location):
        try:
            found = importlib.import_module(category[0])
            for name in category[1].split("."):
                found = getattr(found, name)
        except (ImportError, AttributeError):
            found = Warning
        self.session.config.hook.pytest_warning_recorded.call_historic(kwargs={
            "warning_message": warnings.WarningMessage(message, found, filename, lineno),
            "when": when, "nodeid": nodeid, "location": location and tuple(location),
        })
