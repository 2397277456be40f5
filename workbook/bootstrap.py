"""Get from "a machine with Python" to "inside the workbook's virtualenv", then carry on.

Runs on any Python 3: it may start under an interpreter too old for Django 6.1, find a 3.12+
one, build .venv with the pinned packages, and re-run the command inside it. Later runs only
compare a stamp of pyproject.toml and constraints.txt, so they cost nothing.
"""

import glob
import hashlib
import os
import shutil
import subprocess
import sys

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
    pip = [VENV_PYTHON, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    install(pip + ["install", "-c", CONSTRAINTS, "-e", ROOT])
    with open(STAMP, "w") as f:
        f.write(_fingerprint())


def install(command):
    """Run pip quietly: its output (warnings included, ~70 lines on some machines) is shown
    only when the install fails, then one line of what to do, and the exit status is 1. No
    stamp is written then, so the next run tries again."""
    result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, errors="replace")
    if result.returncode != 0:
        sys.stdout.flush()
        sys.stderr.write(result.stdout)
        sys.exit(
            "workbook: installing the pinned packages into .venv failed (pip exited with "
            "status %d; its output is above). Fix what it says (often the network or a "
            "proxy), then run this command again." % result.returncode
        )


def in_venv():
    return os.path.realpath(sys.prefix) == os.path.realpath(VENV)


def run_in_venv(args):
    """Set up .venv if needed and replace this process with `python -m workbook ARGS` in it."""
    ensure_venv()
    os.execv(VENV_PYTHON, [VENV_PYTHON, "-m", "workbook"] + list(args))
