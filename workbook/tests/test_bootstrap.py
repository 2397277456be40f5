"""The first run's install (workbook/bootstrap.py), with a fake .venv whose pip needs no network."""

import os
import stat

import pytest

from workbook import bootstrap

WARNINGS = 70


@pytest.fixture
def fake_venv(tmp_path, monkeypatch):
    """A .venv whose python is recent enough and whose pip prints 70 warnings, then exits
    with $FAKE_PIP_STATUS (after "ERROR: ..." when it is not 0)."""
    venv = tmp_path / ".venv"
    (venv / "bin").mkdir(parents=True)
    python = venv / "bin" / "python"
    python.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = "-c" ]; then exit 0; fi\n'  # the version check
        "i=0\n"
        f"while [ $i -lt {WARNINGS} ]; do\n"
        '  echo "WARNING: a harmless warning number $i" >&2; i=$((i+1))\n'
        "done\n"
        'if [ "$FAKE_PIP_STATUS" != 0 ]; then\n'
        '  echo "ERROR: Could not find a version that satisfies the requirement Django"\n'
        "fi\n"
        'exit "$FAKE_PIP_STATUS"\n'
    )
    python.chmod(python.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setattr(bootstrap, "VENV", str(venv))
    monkeypatch.setattr(bootstrap, "VENV_PYTHON", str(python))
    monkeypatch.setattr(bootstrap, "STAMP", str(venv / ".workbook-stamp"))
    return venv


def test_a_successful_install_keeps_pips_warnings_to_itself(fake_venv, monkeypatch, capfd):
    monkeypatch.setenv("FAKE_PIP_STATUS", "0")

    bootstrap.ensure_venv()

    out, err = capfd.readouterr()
    assert out == "workbook: installing the pinned packages into .venv (first run only)...\n"
    assert err == "", "pip's warnings are shown only when the install fails"
    assert os.path.exists(bootstrap.STAMP)


def test_a_failed_install_shows_pips_output_and_what_to_do(fake_venv, monkeypatch, capfd):
    monkeypatch.setenv("FAKE_PIP_STATUS", "1")

    with pytest.raises(SystemExit) as exit:
        bootstrap.ensure_venv()

    out, err = capfd.readouterr()
    assert err.count("WARNING: a harmless warning") == WARNINGS
    assert "ERROR: Could not find a version" in err
    assert "Traceback" not in out + err
    assert str(exit.value) == (
        "workbook: installing the pinned packages into .venv failed (pip exited with status "
        "1; its output is above). Fix what it says (often the network or a proxy), then run "
        "this command again."
    )
    assert not os.path.exists(bootstrap.STAMP), "the next run installs again"
