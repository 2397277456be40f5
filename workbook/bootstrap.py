"""Get from "a machine with Python" to "inside the workbook's virtualenv", then carry on.

Runs on any Python 3: it may start under an interpreter too old for Django 6.1, find a 3.12+
one, build .venv with the pinned packages, and re-run the command inside it. Later runs only
compare a stamp of pyproject.toml and constraints.txt, so they cost nothing.
"""

import glob
import hashlib
import os
import re
import shutil
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV = os.path.join(ROOT, ".venv")
VENV_PYTHON = os.path.join(VENV, "bin", "python")
STAMP = os.path.join(VENV, ".workbook-stamp")
CONSTRAINTS = os.path.join(ROOT, "workbook", "constraints.txt")
MINIMUM = (3, 12)


def _fingerprint(root=ROOT):
    """What .venv's stamp records: the pins of the checkout at ROOT."""
    digest = hashlib.sha256()
    for path in (os.path.join(root, "pyproject.toml"),
                 os.path.join(root, "workbook", "constraints.txt")):
        with open(path, "rb") as f:
            digest.update(f.read())
    return digest.hexdigest()


def _is_recent_enough(python):
    check = "import sys; sys.exit(sys.version_info[:2] < (%d, %d))" % MINIMUM
    try:
        return subprocess.call([python, "-c", check], stderr=subprocess.DEVNULL) == 0
    except OSError:
        return False


def find_python():
    """A Python 3.12+ interpreter: this one, one on PATH, or one pyenv installed."""
    candidates = [sys.executable]
    candidates += [shutil.which(name) for name in ("python3.13", "python3.12", "python3")]
    pyenv_root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    candidates += sorted(glob.glob(os.path.join(pyenv_root, "versions", "3.1[2-9]*", "bin", "python")))
    for python in candidates:
        if python and _is_recent_enough(python):
            return python
    return None


def _ready():
    if not os.path.exists(VENV_PYTHON) or not os.path.exists(STAMP):
        return False
    with open(STAMP) as f:
        return f.read().strip() == _fingerprint()


def ensure_venv():
    """Make .venv current, installing only when pyproject.toml or the pins changed."""
    if _ready():
        return
    started = time.time()
    if not os.path.exists(VENV_PYTHON) or not _is_recent_enough(VENV_PYTHON):
        python = find_python()
        if python is None:
            sys.exit(
                "workbook: Django 6.1 needs Python %d.%d or newer, and none was found. "
                "Install one (python.org, your package manager or pyenv), then run this "
                "command again." % MINIMUM
            )
        print("workbook: creating .venv with %s" % python, flush=True)
        subprocess.check_call([python, "-m", "venv", "--clear", VENV])
    print("workbook: installing the pinned packages into .venv (first run only)...", flush=True)
    # rich first, alone (4 small wheels): the rest of the install is shown with its bar,
    # from inside .venv, since this interpreter may have no rich.
    output = install([VENV_PYTHON, "-m", "pip", "--disable-pip-version-check", "install",
                      "--progress-bar", "off", "-c", CONSTRAINTS, "rich"])
    code = subprocess.call([VENV_PYTHON, "-c", SHOW_INSTALL, ROOT, VENV_PYTHON, CONSTRAINTS,
                            repr(started), str(len(installed_names(output)))])
    if code != 0:
        _failed(code)
    with open(STAMP, "w") as f:
        f.write(_fingerprint())


def install(command):
    """Run pip quietly and return its output: its output (warnings included, ~70 lines on some
    machines) is shown only when the install fails, then one line of what to do, and the exit
    status is 1. No stamp is written then, so the next run tries again."""
    result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, errors="replace")
    if result.returncode != 0:
        sys.stdout.flush()
        sys.stderr.write(result.stdout)
        _failed(result.returncode)
    return result.stdout


def _failed(status):
    sys.exit(
        "workbook: installing the pinned packages into .venv failed (pip exited with "
        "status %d; its output is above). Fix what it says (often the network or a "
        "proxy), then run this command again." % status
    )


# The second step, run by .venv's python (rich importable there): ROOT, then show_install's
# arguments. -c rather than -m, which PYTHONSAFEPATH would keep from finding the workbook.
SHOW_INSTALL = ("import sys; sys.path.insert(0, sys.argv[1]); from workbook import bootstrap; "
                "sys.exit(bootstrap.show_install(*sys.argv[2:]))")
REQUIREMENT = re.compile(r"^(Collecting|Processing|Obtaining|Requirement already satisfied:) ")


def installed_names(output):
    """The packages pip's "Successfully installed a-1 b-2" line names."""
    for line in output.splitlines():
        if line.startswith("Successfully installed "):
            return line.split()[2:]
    return []


def pinned(constraints):
    """How many packages constraints.txt pins: what pip will collect, besides the workbook."""
    with open(constraints) as f:
        return sum(1 for line in f if line.strip() and not line.startswith("#"))


def show_install(python, constraints, started, already="0"):
    """Install the workbook and the pins with pip, showing its progress: a bar on a terminal,
    a few lines otherwise, then the count and the time. pip's own output is kept, and written
    whole when it fails; its exit status is returned."""
    command = [python, "-m", "pip", "--disable-pip-version-check", "install",
               "--progress-bar", "off", "-c", constraints, "-e", ROOT]
    display = _display(sys.stdout.isatty(), pinned(constraints) + 1)
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, errors="replace")
    lines = []
    try:
        for line in process.stdout:
            lines.append(line)
            display.saw(line)
        status = process.wait()
    finally:
        display.close()
    output = "".join(lines)
    if status != 0:
        sys.stdout.flush()
        sys.stderr.write(output)
        return status
    sys.stderr.write(_errors(output))
    count = int(already) + len(installed_names(output))
    seconds = time.time() - float(started)
    print("workbook: installed %d package%s in %.0f s" % (count, "s" * (count != 1), seconds),
          flush=True)
    return 0


def _errors(output):
    """pip's ERROR lines of an install that still succeeded (a dependency conflict, say), from
    the first to the end: an error is never hidden."""
    lines = output.splitlines(True)
    first = next((i for i, line in enumerate(lines) if line.startswith("ERROR:")), len(lines))
    return "".join(line for line in lines[first:]
                   if not line.startswith("Successfully installed "))


def _display(terminal, requirements):
    """A live bar on a terminal (rich), plain lines otherwise or when rich cannot be imported."""
    if terminal:
        try:
            return _Bar(requirements)
        except ImportError:
            pass
    return _Lines(requirements)


class _Phases:
    """pip's two long phases, read from its output: collecting the requirements (a line each),
    then installing the packages (silent: counted by their new .dist-info folders)."""

    def __init__(self, requirements):
        self.requirements = requirements
        self.collected = 0
        self.to_install = None

    def saw(self, line):
        if REQUIREMENT.match(line):
            self.collected = min(self.collected + 1, self.requirements)
            self.collecting()
        elif line.startswith("Installing collected packages: "):
            self.to_install = len(line.split(":", 1)[1].split(","))
            self.installing()
        elif line.startswith("Successfully installed "):
            self.done()

    def collecting(self):
        pass

    def installing(self):
        pass

    def done(self):
        pass

    def close(self):
        pass


class _Lines(_Phases):
    """For a log (CI, a pipe): a line when each phase starts, no redrawing."""

    def __init__(self, requirements):
        super().__init__(requirements)
        print("workbook: collecting %d requirements..." % requirements, flush=True)

    def installing(self):
        print("workbook: installing %d packages..." % self.to_install, flush=True)


class _Bar(_Phases):
    """rich's progress bar; during the install a thread counts the new .dist-info folders."""

    def __init__(self, requirements):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        super().__init__(requirements)
        self.progress = Progress("workbook: {task.description:<10}", BarColumn(),
                                 MofNCompleteColumn(), TimeElapsedColumn(), transient=True)
        self.task = self.progress.add_task("collecting", total=requirements)
        self.stop = threading.Event()
        self.progress.start()

    def collecting(self):
        self.progress.update(self.task, completed=self.collected)

    def installing(self):
        self.progress.update(self.task, description="installing", completed=0,
                             total=self.to_install)
        threading.Thread(target=self._count_installed, daemon=True).start()

    def _count_installed(self):
        import sysconfig

        folder = sysconfig.get_paths()["purelib"]
        before = set(_dist_infos(folder))
        while not self.stop.wait(0.2):
            new = len(set(_dist_infos(folder)) - before)
            self.progress.update(self.task, completed=min(new, self.to_install))

    def done(self):
        self.stop.set()
        self.progress.update(self.task, completed=self.to_install)

    def close(self):
        self.stop.set()
        self.progress.stop()


def _dist_infos(folder):
    try:
        return [name for name in os.listdir(folder) if name.endswith(".dist-info")]
    except OSError:
        return []


def in_venv():
    return os.path.realpath(sys.prefix) == os.path.realpath(VENV)


def run_in_venv(args):
    """Set up .venv if needed and replace this process with `python -m workbook ARGS` in it."""
    ensure_venv()
    os.execv(VENV_PYTHON, [VENV_PYTHON, "-m", "workbook"] + list(args))
