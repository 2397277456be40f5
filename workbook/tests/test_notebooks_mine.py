"""`workbook notebook N --mine`: the notebook's last section on the learner's own code, run in a
copy, so that notebooks/ (checked by nbval against its committed outputs) never changes."""

import os
import subprocess
import sys

from workbook import metadata

CONSOLE_SCRIPT = "import sys; from workbook.cli import main; sys.exit(main(sys.argv[1:]))"


def test_notebook_mine_on_the_untouched_stub_says_what_is_missing_in_a_copy(tmp_path):
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(metadata.ROOT), str(clone)], check=True)
    notebooks = {p.name: p.read_bytes() for p in (clone / "notebooks").glob("*.ipynb")}
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("WORKBOOK_", "DJANGO_"))}

    result = subprocess.run(
        [sys.executable, "-c", CONSOLE_SCRIPT, "notebook", "1", "--mine"], cwd=clone, env=env,
        capture_output=True, text=True, timeout=300,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert "  you have not written make_published yet: lesson 01, task 1" in lines
    assert "Error" not in result.stdout
    assert "  .venv/bin/jupyter lab .workbook/notebooks/01_basic_action.ipynb" in lines
    assert (clone / ".workbook" / "notebooks" / "01_basic_action.ipynb").is_file()
    assert {p.name: p.read_bytes() for p in (clone / "notebooks").glob("*.ipynb")} == notebooks
    status = subprocess.run(["git", "-C", str(clone), "status", "--porcelain"],
                            capture_output=True, text=True, check=True).stdout
    assert status == ""
