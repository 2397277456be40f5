"""The instructor's class report, opened in Chromium from the file `workbook class report
--html` wrote: a small class graded for real on exercise 01, no server, no network."""

import json

from selenium.webdriver.common.by import By

from workbook import metadata, mutants
from workbook.tests.test_class import FORGER, answer, folder_submission, prepended, stub, workbook

from .conftest import screenshot

ONE = "exercises/01_basic_action/admin.py"


def test_the_class_report_in_the_browser(chromium, tmp_path):
    exercise = metadata.find("1")
    wrong = [files["admin.py"] for _, files in mutants.hand_written(
        exercise, {"admin.py": answer(ONE)}, [])]
    class_ = {
        "ada": answer(ONE), "grace": answer(ONE), "linus": answer(ONE),
        "barbara": wrong[0], "ken": wrong[1], "margaret": wrong[2], "dennis": wrong[3],
        "alan": stub(ONE), "mallory": prepended(stub(ONE), FORGER),
    }
    sources = [folder_submission(tmp_path / "class", name, {ONE: text})
               for name, text in class_.items()]
    out, page = tmp_path / "out", tmp_path / "report.html"
    done = workbook("class", "grade", *sources, "--out", str(out), "--exercises", "1")
    assert done.returncode == 0, done.stdout + done.stderr
    # alan graded an hour earlier too, with the same result: stuck.
    earlier = json.loads((out / "alan" / "results.json").read_text())
    earlier["workbook"]["graded_at"] = "2026-01-01T09:00:00+00:00"
    (tmp_path / "earlier" / "alan").mkdir(parents=True)
    (tmp_path / "earlier" / "alan" / "results.json").write_text(json.dumps(earlier))
    done = workbook("class", "report", str(out), str(tmp_path / "earlier"), "--html", str(page))
    assert done.returncode == 0, done.stdout + done.stderr

    chromium.set_window_size(1280, 1750)
    try:
        chromium.get(page.as_uri())
        assert chromium.title == f"Class report: {len(class_)} learners"
        looks = {box.get_attribute("data-learner"): box.text
                 for box in chromium.find_elements(By.CSS_SELECTOR, ".look")}
        # Its report is a pipe now, not a file to rewrite: flagged, not forged.
        assert "import atexit" in looks["mallory"]
        assert "Stuck on 01_basic_action task 1" in looks["alan"]
        assert "Hands in nothing" in looks["alan"]
        task = chromium.find_element(By.CSS_SELECTOR, 'tr[data-task="01_basic_action.1"]')
        assert "1 not started" in task.text
        assert "ada" not in looks
        rows = chromium.find_elements(By.CSS_SELECTOR, "tr[data-learner]")
        assert [row.get_attribute("data-learner") for row in rows] == sorted(class_)
        # The histogram draws one bar per learner count, tallest where most learners are.
        bars = chromium.find_elements(By.CSS_SELECTOR, "#\\30 1_basic_action ~ figure rect.bar")
        heights = [float(bar.get_attribute("height")) for bar in bars]
        assert len(heights) == 11 and max(heights) > 0
        shown = chromium.find_element(By.CSS_SELECTOR, "figure svg").size
        assert shown["width"] > 300 and shown["height"] > 100
        screenshot(chromium, "class_report")
    finally:
        chromium.set_window_size(1280, 900)
