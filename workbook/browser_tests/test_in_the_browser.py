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
from selenium.webdriver.support.ui import Select, WebDriverWait

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


def open_change_page(browser, obj):
    opts = obj._meta
    browser.get(f"{browser.base_url}/admin/{opts.app_label}/{opts.model_name}/{obj.pk}/change/")
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


def show_the_dropdown(browser, name="action"):
    """Unfold the action <select> for a screenshot: a headless browser draws no open menu."""
    browser.execute_script(
        f"const s = document.querySelector('select[name={name}]');"
        "s.size = s.options.length; s.style.height = 'auto'; s.style.overflow = 'hidden';"
    )


# Since Django 6.1 a change page may have an action bar of its own, its fields prefixed.
ON_THE_PAGE = "CHANGE_FORM-action"


def labels(browser, name="action"):
    """The action dropdown's choices as {name: label}, without the blank one; {} if none."""
    selects = browser.find_elements(By.NAME, name)
    return {o.get_attribute("value"): o.text for o in Select(selects[0]).options
            if o.get_attribute("value")} if selects else {}


def run_on_the_page(browser, action):
    """Choose `action` in the change page's action bar and press its Run."""
    Select(browser.find_element(By.NAME, ON_THE_PAGE)).select_by_value(action)
    submit(browser, browser.find_element(By.CSS_SELECTOR, "div.actions button[name='index']"))


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


def test_06_publish_then_duplicate_from_the_change_page(browser, admin):
    Article = apps.get_model("change_form", "Article")
    Tag = apps.get_model("change_form", "Tag")
    article = Article.objects.create(title="The long read", body="Once upon a time.",
                                     author=admin)
    article.tags.set([Tag.objects.create(name="culture"), Tag.objects.create(name="history")])
    Tag.objects.create(name="sport")
    other = Article.objects.create(title="Another draft", author=admin)
    log_in(browser, "admin", "pw-admin")

    open_changelist(browser, "/admin/change_form/article/")
    assert labels(browser) == {"delete_selected": "Delete selected articles",
                               "publish": "Publish selected articles"}
    open_change_page(browser, article)
    assert labels(browser, ON_THE_PAGE) == {"publish": "Publish this article",
                                            "unpublish": "Unpublish this article",
                                            "duplicate_as_draft": "Duplicate as draft"}
    show_the_dropdown(browser, ON_THE_PAGE)
    screenshot(browser, "06_change_form_actions")
    run_on_the_page(browser, "publish")

    assert browser.current_url == (
        f"{browser.base_url}/admin/change_form/article/{article.pk}/change/"), "the same page"
    assert messages(browser, "success") == ["1 article was published."]
    article.refresh_from_db()
    other.refresh_from_db()
    assert (article.status, other.status) == ("published", "draft")
    assert article.pub_date is not None

    run_on_the_page(browser, "duplicate_as_draft")

    copy = Article.objects.exclude(pk__in=[article.pk, other.pk]).get()
    assert browser.current_url == f"{browser.base_url}/admin/change_form/article/{copy.pk}/change/"
    assert messages(browser, "success") == [
        "“The long read (copy)” was added as a draft. You may edit it below."]
    assert browser.find_element(By.NAME, "title").get_attribute("value") == copy.title
    screenshot(browser, "06_duplicated_draft")
    assert (copy.title, copy.body, copy.status, copy.pub_date) == (
        "The long read (copy)", "Once upon a time.", "draft", None)
    assert sorted(copy.tags.values_list("name", flat=True)) == ["culture", "history"]
    article.refresh_from_db()
    assert article.status == "published" and article.title == "The long read"


def test_06_a_view_only_user_s_change_page_has_no_action_bar(browser, admin,
                                                               django_user_model):
    article = apps.get_model("change_form", "Article").objects.create(title="Read me",
                                                                      author=admin)
    create_staff(django_user_model, "reader", "change_form.view_article",
                 password="pw-reader", email="reader@example.com")
    log_in(browser, "reader", "pw-reader")

    open_change_page(browser, article)

    assert "Read me" in browser.find_element(By.ID, "content").text, "the page shows the article"
    assert labels(browser, ON_THE_PAGE) == {}
    assert not browser.find_elements(By.CSS_SELECTOR, "div.actions")


def test_06_enter_in_a_field_presses_run_not_save(browser, admin):
    """Django 6.1's change form puts the action bar first, so its Run is the form's default
    button: Enter in a text field runs no action, and the edit typed there is not saved."""
    from selenium.webdriver.common.keys import Keys

    article = apps.get_model("change_form", "Article").objects.create(title="Typo in the titel",
                                                                      author=admin)
    log_in(browser, "admin", "pw-admin")
    open_change_page(browser, article)

    title = browser.find_element(By.NAME, "title")
    title.clear()
    page = browser.find_element(By.TAG_NAME, "html").id
    title.send_keys("Typo fixed", Keys.ENTER)
    WebDriverWait(browser, 15).until(
        lambda driver: driver.find_element(By.TAG_NAME, "html").id != page
        and driver.execute_script("return document.readyState") == "complete"
    )

    assert messages(browser, "warning") == ["No action selected."]
    article.refresh_from_db()
    assert article.title == "Typo in the titel"


def test_07_refund_asks_a_reason_then_refunds_the_paid_orders(browser, admin, mailoutbox):
    Customer = apps.get_model("refund_desk", "Customer")
    Order = apps.get_model("refund_desk", "Order")
    ada = Customer.objects.create(name="Ada Okafor", email="ada@example.com")
    orders = [Order.objects.create(number=f"RD-{i:05}", customer=ada, total=f"{20 + i}.50",
                                   status="shipped" if i == 4 else "paid")
              for i in range(1, 6)]
    selected, other = orders[:4], orders[4]
    log_in(browser, "admin", "pw-admin")
    open_changelist(browser, "/admin/refund_desk/order/")

    tick(browser, *selected)
    run(browser, "mark_refunded")

    content = browser.find_element(By.ID, "content").text
    assert "Refund these orders?" in content
    assert "3 paid orders will be refunded, 1 will be skipped" in content
    screenshot(browser, "07_refund_page")
    # No reason is chosen until the clerk chooses one, and the browser itself asks for one
    # (Django marks the field required). Without that check, as a script would post it, the
    # server refuses the form too.
    reason = browser.find_element(By.NAME, "reason")
    assert browser.execute_script("return arguments[0].validity.valueMissing", reason)
    browser.execute_script("arguments[0].form.noValidate = true", reason)
    submit(browser, browser.find_element(By.NAME, "apply"))

    errors = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "ul.errorlist li")]
    assert errors == ["This field is required."]
    assert Order.objects.filter(status="refunded").count() == 0, "an invalid form refunds nothing"
    Select(browser.find_element(By.NAME, "reason")).select_by_visible_text("Arrived too late")
    browser.find_element(By.NAME, "note").send_keys("Sorry for the wait.")
    submit(browser, browser.find_element(By.NAME, "apply"))

    assert messages(browser, "success") == ["3 orders were refunded."]
    assert messages(browser, "warning") == ["1 order was skipped (already refunded or shipped)."]
    assert browser.current_url == f"{browser.base_url}/admin/refund_desk/order/"
    assert {o.number: (o.status, o.refund_reason, o.refund_note)
            for o in Order.objects.order_by("number")} == {
        "RD-00001": ("refunded", "late", "Sorry for the wait."),
        "RD-00002": ("refunded", "late", "Sorry for the wait."),
        "RD-00003": ("refunded", "late", "Sorry for the wait."),
        "RD-00004": ("shipped", "", ""),
        other.number: ("paid", "", ""),
    }
    assert sorted(m.subject for m in mailoutbox) == [
        "Order RD-00001 refunded", "Order RD-00002 refunded", "Order RD-00003 refunded"]


def test_08_move_with_the_bar_then_archive_with_the_button(browser, admin):
    from datetime import timedelta

    from django.utils import timezone

    Category = apps.get_model("parameters", "Category")
    Article = apps.get_model("parameters", "Article")
    sport = Category.objects.create(name="Sport")
    Category.objects.create(name="News")
    long_ago = timezone.now() - timedelta(days=500)
    old = Article.objects.create(title="Old match report", status="published", pub_date=long_ago)
    fresh = Article.objects.create(title="Fresh interview", status="published",
                                   pub_date=timezone.now())
    log_in(browser, "admin", "pw-admin")

    open_changelist(browser, "/admin/parameters/article/")
    tick(browser, old, fresh)
    Select(browser.find_element(By.NAME, "category")).select_by_visible_text("Sport")
    Select(browser.find_element(By.NAME, "action")).select_by_value("move_to_category")
    screenshot(browser, "08_parameters")
    submit(browser, browser.find_element(By.CSS_SELECTOR, "button[name='index']"))

    assert messages(browser, "success") == ["Moved 2 articles to Sport."]
    assert set(Article.objects.values_list("category", flat=True)) == {sport.pk}

    run(browser, "move_to_category")  # nothing ticked, no category: Django's own warning
    assert messages(browser, "warning")

    open_changelist(browser, "/admin/parameters/article/")
    submit(browser, browser.find_element(By.CSS_SELECTOR, "button[name='archive_old']"))

    assert browser.current_url == f"{browser.base_url}/admin/parameters/article/"
    assert messages(browser, "success") == ["Archived 1 article published over a year ago."]
    assert dict(Article.objects.values_list("title", "status")) == {
        "Old match report": "archived", "Fresh interview": "published"}

    open_change_page(browser, fresh)
    Select(browser.find_element(By.NAME, "CHANGE_FORM-category")).select_by_visible_text("News")
    run_on_the_page(browser, "move_to_category")

    assert messages(browser, "success") == ["Moved 1 article to News."]
    fresh.refresh_from_db()
    assert fresh.category.name == "News"
