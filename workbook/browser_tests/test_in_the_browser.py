"""Every exercise's reference answer, used in a real headless Chromium as a person would.

Log in through the login form, tick rows, choose the action, press Run, confirm where asked,
then check the message, the download and the database. CSRF protection stays on.
Run with: pytest workbook/browser_tests --solutions
"""

import csv
import io

import pytest
from django.apps import apps
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from workbook.testing import create_staff

from .conftest import downloaded, log_in, screenshot, submit

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def admin(django_user_model):
    return django_user_model.objects.create_superuser("admin", "admin@example.com", "pw-admin")


def staff(django_user_model, username, *codenames):
    return create_staff(django_user_model, username,
                        *[f"conditional.{codename}" for codename in codenames],
                        password=f"pw-{username}", email=f"{username}@example.com")


def open_changelist(browser, path):
    browser.get(f"{browser.base_url}{path}")
    return browser


def tick(browser, *objects):
    for obj in objects:
        browser.find_element(By.CSS_SELECTOR, f"input.action-select[value='{obj.pk}']").click()


def offered(browser):
    selects = browser.find_elements(By.NAME, "action")
    return [o.get_attribute("value") for o in Select(selects[0]).options if
            o.get_attribute("value")] if selects else []


def run(browser, action):
    """Choose `action` and press Run; wait for the page it leads to."""
    Select(browser.find_element(By.NAME, "action")).select_by_value(action)
    submit(browser, browser.find_element(By.CSS_SELECTOR, "button[name='index']"))


def messages(browser, level):
    return [m.text for m in browser.find_elements(By.CSS_SELECTOR, f".messagelist .{level}")]


def show_the_dropdown(browser):
    """Unfold the action <select> for a screenshot: a headless browser draws no open menu."""
    browser.execute_script(
        "const s = document.querySelector('select[name=action]');"
        "s.size = s.options.length; s.style.height = 'auto'; s.style.overflow = 'hidden';"
    )


def test_01_publish_two_drafts(browser, admin):
    Article = apps.get_model("basic_action", "Article")
    first, second, third = (Article.objects.create(title=f"Draft {i}", author=admin)
                            for i in range(1, 4))
    log_in(browser, "admin", "pw-admin")
    open_changelist(browser, "/admin/basic_action/article/")

    tick(browser, first, second)
    show_the_dropdown(browser)
    screenshot(browser, "01_changelist_actions")
    run(browser, "make_published")

    assert messages(browser, "success") == ["2 articles were marked as published."]
    screenshot(browser, "01_success_message")
    assert [a.status for a in Article.objects.order_by("pk")] == ["published", "published", "draft"]


def test_02_export_downloads_the_selected_articles(browser, admin, downloads):
    Article = apps.get_model("export", "Article")
    kept = Article.objects.create(title="=1+1, tricky", author=admin)
    other = Article.objects.create(title="Not selected", author=admin)
    log_in(browser, "admin", "pw-admin")
    open_changelist(browser, "/admin/export/article/")

    tick(browser, kept)
    Select(browser.find_element(By.NAME, "action")).select_by_value("export_as_csv")
    screenshot(browser, "02_export_action")
    browser.find_element(By.CSS_SELECTOR, "button[name='index']").click()

    rows = list(csv.reader(io.StringIO(downloaded(downloads, "articles.csv"), newline="")))
    assert rows == [["Title", "Author", "Status", "Published"], ["'=1+1, tricky", "admin",
                                                                 "draft", ""]]
    assert Article.objects.filter(pk=other.pk).exists()


def test_03_delete_after_confirming(browser, admin):
    Article = apps.get_model("confirmation", "Article")
    Comment = apps.get_model("confirmation", "Comment")
    doomed = [Article.objects.create(title=f"Old {i}", author=admin) for i in range(2)]
    Comment.objects.create(article=doomed[0], name="Reader", body="Hm.")
    kept = Article.objects.create(title="Keep me", author=admin)
    log_in(browser, "admin", "pw-admin")
    open_changelist(browser, "/admin/confirmation/article/")

    tick(browser, *doomed)
    run(browser, "delete_with_confirmation")

    assert "Old 0 (1 comment)" in browser.find_element(By.ID, "content").text
    assert Article.objects.count() == 3, "the confirmation page must not delete"
    screenshot(browser, "03_confirmation_page")
    submit(browser, browser.find_element(By.NAME, "apply"))

    assert messages(browser, "success") == ["Deleted 2 articles."]
    assert list(Article.objects.values_list("pk", flat=True)) == [kept.pk]
    assert not Comment.objects.exists()


def test_03_cancel_goes_back_and_deletes_nothing(browser, admin):
    Article = apps.get_model("confirmation", "Article")
    article = Article.objects.create(title="Maybe", author=admin)
    log_in(browser, "admin", "pw-admin")
    open_changelist(browser, "/admin/confirmation/article/?q=Maybe")

    tick(browser, article)
    run(browser, "delete_with_confirmation")
    submit(browser, browser.find_element(By.CSS_SELECTOR, "a.cancel-link"))

    assert browser.current_url.endswith("/admin/confirmation/article/?q=Maybe")
    assert Article.objects.filter(pk=article.pk).exists()


def test_04_each_user_sees_only_what_they_may_run(browser, admin, django_user_model,
                                                  mailoutbox):
    Article = apps.get_model("conditional", "Article")
    article = Article.objects.create(title="News", author=admin)
    staff(django_user_model, "reader", "view_article")
    staff(django_user_model, "editor", "view_article", "change_article", "delete_article",
          "send_notifications")

    log_in(browser, "reader", "pw-reader")
    open_changelist(browser, "/admin/conditional/article/")
    assert offered(browser) == []
    screenshot(browser, "04_reader_changelist")

    browser.delete_all_cookies()
    log_in(browser, "editor", "pw-editor")
    open_changelist(browser, "/admin/conditional/article/")
    assert offered(browser) == ["make_published", "notify_authors"]
    show_the_dropdown(browser)
    screenshot(browser, "04_editor_changelist")
    tick(browser, article)
    run(browser, "notify_authors")

    assert messages(browser, "success") == ["Notifications sent to 1 author."]
    assert [m.to for m in mailoutbox] == [["admin@example.com"]]


def test_05_export_any_model_but_api_keys(browser, admin, downloads):
    Category = apps.get_model("global", "Category")
    news = Category.objects.create(name="News")
    apps.get_model("global", "ApiKey").objects.create(name="Partner", key="secret-key")
    log_in(browser, "admin", "pw-admin")

    open_changelist(browser, "/global/admin/global/apikey/")
    assert "export_selected" not in offered(browser)
    open_changelist(browser, "/global/admin/global/category/")
    tick(browser, news)
    show_the_dropdown(browser)
    screenshot(browser, "05_global_site")
    Select(browser.find_element(By.NAME, "action")).select_by_value("export_selected")
    browser.find_element(By.CSS_SELECTOR, "button[name='index']").click()  # a download

    assert downloaded(downloads, "global.category.csv") == f"id,name\r\n{news.pk},News\r\n"
