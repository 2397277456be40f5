"""The first run's install (workbook/bootstrap.py), with a fake .venv whose pip needs no network."""

import os
import re
import stat
import sys

import pytest

from workbook import bootstrap

WARNINGS = 70
PINS = "# pins\nDjango==6.1.3\npytest==9.2.0\nrich==15.0.0\n"


@pytest.fixture
def fake_venv(tmp_path, monkeypatch):
    """A .venv whose pip needs no network: it prints 70 warnings, then what pip prints when it
    installs rich alone (the first step) or the workbook and 3 pins (-e, the second step), or
    "ERROR: ..." and status 1 in the step named by $FAKE_PIP_FAILS. Anything but pip (the
    version check, the second step's progress display) runs on this test's python."""
    venv = tmp_path / ".venv"
    (venv / "bin").mkdir(parents=True)
    python = venv / "bin" / "python"
    python.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" != "-m" ]; then exec {sys.executable} "$@"; fi\n'
        "step=rich\n"
        'for arg in "$@"; do if [ "$arg" = "-e" ]; then step=rest; fi; done\n'
        "i=0\n"
        f"while [ $i -lt {WARNINGS} ]; do\n"
        '  echo "WARNING: a harmless warning number $i" >&2; i=$((i+1))\n'
        "done\n"
        'if [ "$FAKE_PIP_FAILS" = "$step" ]; then\n'
        '  echo "ERROR: Could not find a version that satisfies the requirement Django"\n'
        "  exit 1\n"
        "fi\n"
        'if [ $step = rich ]; then\n'
        '  echo "Successfully installed markdown-it-py-4.3.0 mdurl-0.1.2 rich-15.0.0"\n'
        "  exit 0\n"
        "fi\n"
        'echo "Obtaining file:///workbook"\n'
        'echo "Collecting Django<6.2,>=6.1"\n'
        'echo "  Using cached django-6.1.3-py3-none-any.whl"\n'
        'echo "Processing /wheels/pytest-9.2.0-py3-none-any.whl"\n'
        'echo "Requirement already satisfied: rich<16,>=15 in ./.venv"\n'
        'echo "Installing collected packages: pytest, Django, django-admin-actions-workbook"\n'
        'echo "Successfully installed Django-6.1.3 django-admin-actions-workbook-0.1.0 '
        'pytest-9.2.0"\n'
    )
    python.chmod(python.stat().st_mode | stat.S_IXUSR)
    constraints = tmp_path / "constraints.txt"
    constraints.write_text(PINS)
    monkeypatch.setattr(bootstrap, "VENV", str(venv))
    monkeypatch.setattr(bootstrap, "VENV_PYTHON", str(python))
    monkeypatch.setattr(bootstrap, "STAMP", str(venv / ".workbook-stamp"))
    monkeypatch.setattr(bootstrap, "CONSTRAINTS", str(constraints))
    monkeypatch.setenv("FAKE_PIP_FAILS", "")
    return venv


def test_a_successful_install_shows_its_progress_and_time_not_pips_warnings(
        fake_venv, monkeypatch, capfd):
    """Not a terminal (a pipe, CI): a line per phase instead of a bar, then the count (rich's
    3 and the second step's 3) and the time, counted from the first run's start."""
    started = bootstrap.time.time() - 40
    monkeypatch.setattr(bootstrap.time, "time", lambda: started)

    bootstrap.ensure_venv()

    out, err = capfd.readouterr()
    lines = out.splitlines()
    assert lines[:3] == [
        "workbook: installing the pinned packages into .venv (first run only)...",
        "workbook: collecting 4 requirements...",  # the 3 pins and the workbook
        "workbook: installing 3 packages...",
    ], out
    assert len(lines) == 4 and re.fullmatch(r"workbook: installed 6 packages in (\d+) s",
                                            lines[3]), out
    assert int(lines[3].split()[-2]) >= 40, "the time since the first run started"
    assert err == "", "pip's warnings are shown only when the install fails"
    assert os.path.exists(bootstrap.STAMP)


def test_the_progress_follows_pips_phases():
    phases = bootstrap._Phases(4)
    for line in ("Obtaining file:///workbook", "Collecting Django", "  Downloading x.whl",
                 "Processing /wheels/pytest.whl", "WARNING: ignored"):
        phases.saw(line)
    assert (phases.collected, phases.to_install) == (3, None)
    phases.saw("Requirement already satisfied: rich in ./.venv")
    phases.saw("Collecting one-more-than-pinned")
    assert phases.collected == 4, "never past the end of the bar"
    phases.saw("Installing collected packages: a, b, c\n")
    assert phases.to_install == 3
    assert bootstrap.installed_names("x\nSuccessfully installed a-1 b-2\n") == ["a-1", "b-2"]


@pytest.mark.parametrize("step", ["rich", "rest"])
def test_a_failed_install_shows_pips_output_and_what_to_do(fake_venv, monkeypatch, capfd, step):
    """Whichever step fails: rich's alone, or the rest behind the progress display."""
    monkeypatch.setenv("FAKE_PIP_FAILS", step)

    with pytest.raises(SystemExit) as exit:
        bootstrap.ensure_venv()

    out, err = capfd.readouterr()
    assert err.count("WARNING: a harmless warning") == WARNINGS
    assert "ERROR: Could not find a version" in err
    assert "Traceback" not in out + err
    assert "workbook: installed" not in out
    assert str(exit.value) == (
        "workbook: installing the pinned packages into .venv failed (pip exited with status "
        "1; its output is above). Fix what it says (often the network or a proxy), then run "
        "this command again."
    )
    assert not os.path.exists(bootstrap.STAMP), "the next run installs again"
