"""What a learner's mistakes look like: each test puts a wrong answer in a copy of the workbook,
runs pytest there as a learner does, and reads the output.

Never in this checkout: the learner's files here stay as they are.
"""

import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from workbook import metadata, mutants

CONSOLE_SCRIPT = "import sys; from workbook.cli import main; sys.exit(main(sys.argv[1:]))"


def make_copy(root):
    shutil.copytree(metadata.ROOT, root, ignore=mutants.NOT_COPIED)
    return root


@pytest.fixture
def copy(tmp_path):
    """A copy of the workbook, with the stubs as a learner starts with them."""
    return make_copy(tmp_path / "workbook")


def answer_with(copy, folder, *edits):
    """Put the reference answer in place of the learner's files, its admin.py changed by
    `edits`, each (old, new) or (old, new, count)."""
    for name in metadata.find(folder).learner_files:
        shutil.copy(metadata.SOLUTIONS_DIR / folder / name, copy / "exercises" / folder / name)
    path = copy / "exercises" / folder / "admin.py"
    text = path.read_text()
    for old, new, *count in edits:
        assert old in text, old
        text = text.replace(old, new, *count)
    path.write_text(text)
    return text


def environment():
    # A learner's terminal: CI=true would make pytest print every message whole again in its
    # short summary.
    env = {k: v for k, v in os.environ.items()
           if k not in ("WORKBOOK_SOLUTIONS", "PYTHONPATH", "CI", "BUILD_NUMBER")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def run_pytest(copy, *args):
    """`python -m pytest ARGS` in the copy, as a learner runs it: (exit code, output)."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", *args, "-p", "no:cacheprovider"], cwd=copy,
        env=environment(), capture_output=True, text=True, timeout=300,
    )
    return done.returncode, done.stdout + done.stderr


def workbook(copy, *args):
    done = subprocess.run(
        [sys.executable, "-c", CONSOLE_SCRIPT, *args], cwd=copy, env=environment(),
        capture_output=True, text=True, timeout=300,
    )
    return done.returncode, done.stdout + done.stderr


def failures_section(output):
    return output.split("= FAILURES =", 1)[1].split("short test summary", 1)[0]


# 1. An exception raised by the learner's action


def test_an_exception_in_the_action_says_what_was_raised_at_which_line(copy):
    text = answer_with(
        copy, "01_basic_action",
        ("exclude(status=Article.Status.PUBLISHED).update(\n            status=",
         "exclude(status=Article.Status.PUBLISHED).update(\n            statuss="),
    )
    line = next(n for n, source in enumerate(text.splitlines(), 1) if "statuss=" in source)

    code, output = run_pytest(
        copy, "exercises/01_basic_action", "-k", "publishes_only_the_selected_articles"
    )

    assert code == 1
    assert "Your code raised FieldDoesNotExist" in output
    assert "The model has no field by that name" in output
    assert re.search(rf"exercises/01_basic_action/admin\.py, line ({line}|{line - 1})", output)
    assert "Task 1: Publish the selected articles" in output
    assert "site-packages" not in output
    assert len(failures_section(output).splitlines()) < 15


def test_an_uncaught_protected_error_says_so_and_what_to_do(copy):
    answer_with(
        copy, "03_confirmation",
        ("except (ProtectedError, RestrictedError) as error:", "except KeyError as error:"),
    )

    code, output = run_pytest(
        copy, "exercises/03_confirmation", "-k",
        "test_a_row_protected_meanwhile_stops_everything_first_in_the_order",
    )

    assert code == 1
    assert "raised ProtectedError" in output
    assert "exercises/03_confirmation/admin.py, line" in output
    assert "on_delete=PROTECT" in output
    assert "site-packages" not in output
    assert "Internal Server Error" not in output
    assert len(failures_section(output).splitlines()) < 15


def test_an_error_raised_while_the_export_streams_is_not_sent_to_message_user(copy):
    # An article without a pub_date makes the generator raise, long after the action returned.
    answer_with(
        copy, "02_export",
        ('pub_date.isoformat() if pub_date else "",', "pub_date.isoformat(),"),
    )

    code, output = run_pytest(
        copy, "exercises/02_export", "-k",
        "test_one_row_per_selected_article_with_author_and_iso_date",
    )

    assert code == 1
    failure = failures_section(output)
    assert "raised AttributeError" in failure
    assert "exercises/02_export/admin.py, line" in failure
    assert "message_user" not in failure
    assert "Server Error (500)" not in failure
    assert "the status (200 OK) and the headers have gone out" in failure
    assert "prevented before the response starts" in failure


# 2. System-check errors of an exercise's app


def test_system_check_errors_are_reported_in_one_line_each(copy):
    answer_with(
        copy, "04_conditional", ("def has_notify_permission", "def has_notfy_permission")
    )

    code, output = run_pytest(copy, "exercises/04_conditional")

    assert code == 1
    assert "22 failed" in output
    assert "fails Django's system checks" in output
    assert re.search(r"admin\.E129 ArticleAdmin: .*has_notify_permission", output)
    assert "site-packages" not in output
    assert "Traceback" not in output
    # Shown once, with "21 more tests ... fail for the same reason", not once per test.
    assert len(re.findall(r"admin\.E129", output)) == 1
    assert len(output.splitlines()) < 60


# 3. The query-count failure


def test_a_query_count_failure_is_in_the_workbooks_format(copy):
    answer_with(
        copy, "01_basic_action",
        ("    def make_published(self, request, queryset):\n",
         "    def make_published(self, request, queryset):\n"
         "        for article in queryset:\n"
         "            Article.objects.filter(pk=article.pk).exists()\n"),
    )

    code, output = run_pytest(
        copy, "exercises/01_basic_action", "-k",
        "test_make_published_runs_as_many_queries_for_500_rows_as_for_1",
    )

    assert code == 1
    assert "make_published ran more SQL queries for 500 articles than for 1" in output
    assert re.search(r"Expected \d+ SQL queries; \d+ ran, the first of them:", output)
    assert "pytest_django" not in output
    assert len(failures_section(output).splitlines()) < 20


# 4. Advice built from what was offered


def test_a_reader_offered_notify_is_told_about_notify_under_task_3(copy):
    answer_with(
        copy, "04_conditional",
        ('@admin.action(permissions=["notify"], description=', "@admin.action(description="),
    )

    code, output = run_pytest(
        copy, "exercises/04_conditional", "-k",
        "test_a_reader_is_offered_no_action_and_changes_nothing",
    )

    assert code == 1
    failure = failures_section(output)
    assert "notify_authors is offered, though a reader may not send notifications" in failure
    assert "make_published is offered" not in failure
    assert "Task 3: Notify the authors" in failure
    assert "Task 2:" not in failure


# 5. Message mismatches say what differs


def test_a_message_at_the_wrong_level_says_so(copy):
    answer_with(copy, "01_basic_action", ("messages.SUCCESS)", "messages.INFO)", 1))

    code, output = run_pytest(
        copy, "exercises/01_basic_action", "-k",
        "test_publishing_three_articles_says_so_in_the_plural",
    )

    assert code == 1
    assert "The level is INFO; it should be SUCCESS (the words are right)." in output
    assert "ngettext" not in output


def test_a_delete_count_with_the_cascaded_rows_says_so(copy):
    answer_with(
        copy, "03_confirmation",
        ("self.delete_queryset(request, queryset)", "deleted = queryset.delete()[0]"),
        ('"Deleted %(count)d articles.", len(pks)\n        ) % {"count": len(pks)}',
         '"Deleted %(count)d articles.", deleted\n        ) % {"count": deleted}'),
    )

    code, output = run_pytest(
        copy, "exercises/03_confirmation", "-k",
        "test_confirming_deletes_the_articles_and_their_comments",
    )

    assert code == 1
    assert "The count differs: it says 6, expected 2." in output
    assert "delete() returns every row it deleted" in output


def failure_of(output, test):
    """The failure message pytest printed for `test` (a test function's name)."""
    section = failures_section(output)
    start = re.search(rf"^_+ {test} _+$", section, re.M)
    assert start, f"no failure shown for {test}"
    rest = section[start.end():]
    end = re.search(r"^_+ test_\w+ _+$", rest, re.M)
    return rest[:end.start()] if end else rest


def test_a_confirmation_that_deletes_nothing_is_not_blamed_on_what_is_right(copy):
    # The page is right; the confirming POST neither logs nor deletes, and still says it did.
    answer_with(
        copy, "03_confirmation",
        ("                    self.log_deletions(request, queryset)\n"
         "                    self.delete_queryset(request, queryset)",
         "                    pass"),
    )

    code, output = run_pytest(
        copy, "exercises/03_confirmation", "-k",
        "bottom_action_bar or csrf_checks or select_all_1500 or protected_meanwhile_stops"
        "_everything_first or refers_to_other_articles",
    )

    assert code == 1
    bottom = failure_of(output, "test_confirming_works_when_the_bottom_action_bar_was_used")
    csrf = failure_of(output, "test_the_whole_flow_passes_django_csrf_checks")
    across = failure_of(output, "test_select_all_1500_articles_on_a_filtered_changelist")
    refused = failure_of(
        output, "test_a_row_protected_meanwhile_stops_everything_first_in_the_order"
    )
    others = failure_of(output, "test_what_refers_to_other_articles_blocks_nothing")
    assert "should hold one hidden 'action' field" not in bottom
    assert "Put {% csrf_token %}" not in csrf
    assert "Keep select_across=1" not in across
    assert "After the ERROR" not in refused and "transaction.atomic" not in refused
    for failure in (bottom, csrf, refused, others):
        assert "deleted nothing" in failure, failure
    assert "deleted none of the 1,500 drafts" in across
    # Each says what the user saw, and sends the learner to the test that names the cause.
    for failure in (bottom, csrf, across, refused, others):
        assert "Deleted " in failure, failure
        assert "test_confirming_deletes_the_articles_and_their_comments (task 2)" in failure


def test_history_committed_by_an_error_caught_inside_the_atomic_block_says_so(copy):
    answer_with(
        copy, "03_confirmation",
        ("""        try:
            with transaction.atomic(using=router.db_for_write(self.model)):""",
         """        if True:
            with transaction.atomic(using=router.db_for_write(self.model)):"""),
        ("""                    self.delete_queryset(request, queryset)
        except (ProtectedError, RestrictedError) as error:
            self.message_user(request, self.still_in_use(error), messages.ERROR)
            return None""",
         """                    try:
                        self.delete_queryset(request, queryset)
                    except (ProtectedError, RestrictedError) as error:
                        self.message_user(request, self.still_in_use(error), messages.ERROR)
                        return None"""),
    )

    code, output = run_pytest(
        copy, "exercises/03_confirmation", "-k", "protected_meanwhile_stops_everything_first",
    )

    assert code == 1
    failure = failure_of(
        output, "test_a_row_protected_meanwhile_stops_everything_first_in_the_order"
    )
    assert "the admin history records 3 deletions, though the user was shown the ERROR" in failure
    assert "that block committed them: the exception was caught inside the block" in failure
    assert "Log and delete in one transaction.atomic" not in failure


def test_a_message_worded_differently_shows_where():
    from workbook.testing import message_differences

    assert message_differences(
        [("warning", "No articles were changed: the 2 selected were already published.")],
        [("warning", "No articles changed: the 2 selected were already published.")],
    ) == ["The wording differs: expected “articles were changed:”, found “articles changed:”."]
    assert message_differences(
        [("success", "1 article was marked as published.")],
        [("success", "1 articles were marked as published.")],
    )[0].startswith("Singular and plural are mixed up for a count of 1")
    # Without a count there is no form for ngettext to pick: only the words differ.
    assert message_differences(
        [("warning", "No articles were published: none of the selected articles is a draft.")],
        [("warning", "No article was published: none of the selected articles is a draft.")],
    ) == ["The wording differs: expected “No articles were published:”, found “No article was "
          "published:”."]
    # A count taken after the delete: the count is what is wrong, not the words that follow it.
    assert message_differences(
        [("success", "Deleted 1 article.")], [("success", "Deleted 0 articles.")],
    ) == ["The count differs: it says 0, expected 1. A count taken once the rows are deleted "
          "finds none left: count what you delete before you delete it."]


def test_a_one_message_warning_worded_wrong_is_not_blamed_on_ngettext(copy):
    answer_with(
        copy, "06_change_form",
        ('"No articles were published: none of the selected articles is a draft."',
         '"No article was published: none of the selected articles is a draft."'),
    )

    code, output = run_pytest(
        copy, "exercises/06_change_form", "-k",
        "test_publish_keeps_a_date_the_article_already_has_and_says_when_nothing_changed",
    )

    assert code == 1
    failure = failures_section(output)
    assert "It shows:\n  [warning] No article was published: none of the selected" in failure
    assert ("The wording differs: expected “No articles were published:”, found “No article "
            "was published:”.") in failure
    assert "ngettext" not in failure
    assert "which function picks the form" not in failure


# 6. The same failure once, 8. the footer, on the untouched stubs


@pytest.fixture(scope="module")
def stub_run(tmp_path_factory):
    copy = make_copy(tmp_path_factory.mktemp("stubs") / "workbook")
    return run_pytest(copy, "exercises/01_basic_action")


def test_the_same_failure_is_shown_once_with_how_many_more(stub_run):
    code, output = stub_run

    assert code == 1
    assert "30 failed" in output
    assert len(re.findall(r"^FAILED ", output, re.M)) == 30
    failures = failures_section(output)
    assert failures.count(
        "no action named 'make_published'.\nActions offered now: delete_selected."
    ) == 1
    assert re.search(r"\d+ more tests of tasks 1, 2 and 4 fail for the same reason", failures)
    assert len(failures.splitlines()) < 40


def test_the_failure_footer_names_the_hint_command(stub_run):
    _, output = stub_run

    assert f"stuck? Run `{metadata.runnable('workbook hint 1.1')}`." in output
    assert "hints.md" not in output


# 7. grade --json


def test_grade_json_keeps_each_failure_message_whole(copy):
    """And follows Exercism's spec to the letter: each test's name as a sentence, its code,
    what the learner's code printed during it (500 characters at most, then the spec's
    notice); "fail" overall, with no message, when tests ran and some failed."""
    admin = copy / "exercises" / "01_basic_action" / "admin.py"
    admin.write_text(admin.read_text().replace(
        "    actions = []\n",
        "    actions = []\n\n    def get_actions(self, request):\n"
        "        print('debug ' * 100)\n        return super().get_actions(request)\n"))

    code, output = workbook(copy, "grade", "--json", "results.json")

    assert code == 0, output
    graded = json.loads((copy / "results.json").read_text())
    assert (graded["version"], graded["status"], graded["message"]) == (3, "fail", None)
    tests = graded["tests"]
    offered = next(t for t in tests if t["nodeid"].endswith("::test_make_published_is_offered_in_the_dropdown"))
    assert offered["message"].startswith("The Article changelist offers this user no action")
    assert "\nActions offered now: delete_selected.\n" in offered["message"]
    assert offered["name"] == "01, task 1: Make published is offered in the dropdown"
    assert offered["test_code"] == ('expect_action_offered(\n    admin_client, Article, '
                                    '"make_published", "Mark selected articles as published"\n)')
    assert offered["output"] == ("debug " * 100)[:500] + (
        "\nOutput was truncated. Please limit to 500 chars")
    assert all(t["name"] and "::" not in t["name"] and t["test_code"] for t in tests)
    assert not any("output" in t for t in tests if t["exercise"] != "01_basic_action")


def test_grade_json_is_an_error_only_when_no_test_ran_and_then_says_why():
    """Exercism keeps "error" for a run whose tests did not run, and then requires the
    message; one errored test among others that ran is a "fail"."""
    from workbook import progress

    def report(*outcomes, broken=None):
        return {"broken": broken or {}, "tests": [
            {"nodeid": f"exercises/01_basic_action/t.py::test_{n}", "exercise": "01_basic_action",
             "task": 1, "points": 1, "outcome": outcome, "message": f"{outcome} {n}"}
            for n, outcome in enumerate(outcomes)]}

    assert progress.results(report("passed", "error"))["status"] == "fail"
    assert progress.results(report("passed", "passed"))["status"] == "pass"
    assert progress.results(report("passed"))["message"] is None
    none_ran = progress.results(report("error", "error", broken={
        "01_basic_action": "admin.py does not import: SyntaxError, line 3"}))
    assert (none_ran["status"], none_ran["message"]) == (
        "error", "01_basic_action: admin.py does not import: SyntaxError, line 3")
    assert progress.results(report("error"))["message"] == "error 0"
    assert progress.results(report())["status"] == "error"


# 9. The board and an admin.py that does not import


def test_the_board_marks_an_admin_that_does_not_import_and_makes_it_next(copy):
    admin = copy / "exercises" / "02_export" / "admin.py"
    text = admin.read_text()
    admin.write_text(text + "\n\ndef broken(:\n    pass\n")
    line = len(text.splitlines()) + 3

    code, output = workbook(copy)

    assert f"02_export            !! admin.py does not import: SyntaxError, line {line}" in output
    assert "Next: exercise 02_export (admin.py does not import" in output
    assert "fix    exercises/02_export/admin.py" in output
