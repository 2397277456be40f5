"""A real headless Chromium (Debian's, through its chromedriver) for the browser tests."""

import os
import shutil
import time
from pathlib import Path

import pytest

from workbook import switch

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
SCREENSHOTS = os.environ.get("WORKBOOK_SCREENSHOTS")


@pytest.fixture(autouse=True)
def _reference_answers_only():
    if not switch.solutions_mode():
        pytest.fail("The browser tests check the reference answers: run them with --solutions.",
                    pytrace=False)


@pytest.fixture(autouse=True)
def _the_admin_as_people_see_it(monkeypatch):
    """Put back the navigation sidebar that test runs leave out (workbook/pytest_plugin.py):
    these tests and the lessons' screenshots show the admin as a person sees it."""
    from django.contrib.admin import AdminSite

    monkeypatch.setattr(AdminSite, "enable_nav_sidebar", True)


@pytest.fixture(scope="session")
def downloads(tmp_path_factory):
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="session")
def chromium(tmp_path_factory, downloads):
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        pytest.fail(
            "The browser tests need Debian's chromium and chromium-driver: "
            "apt-get install chromium chromium-driver (.ci/run does).", pytrace=False,
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-quic", "--no-first-run", "--window-size=1280,900",
        # No calls home: this machine's network is closed, and tests should not depend on it.
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
    )
    yield driver
    driver.quit()


@pytest.fixture
def browser(chromium, live_server, downloads):
    """The browser, logged out, with an empty downloads folder and the live server's URL."""
    chromium.delete_all_cookies()
    for leftover in downloads.iterdir():
        leftover.unlink()
    chromium.base_url = live_server.url
    return chromium


def submit(browser, button):
    """Click a submit button and wait until the next page has replaced this one, loaded."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    page = browser.find_element(By.TAG_NAME, "html").id

    def next_page_loaded(driver):
        # Mid-navigation, Chromium may answer "node does not belong to the document": not yet.
        try:
            return (driver.find_element(By.TAG_NAME, "html").id != page
                    and driver.execute_script("return document.readyState") == "complete")
        except WebDriverException:
            return False

    button.click()
    WebDriverWait(browser, 15).until(next_page_loaded)


def log_in(browser, username, password):
    from selenium.webdriver.common.by import By

    browser.get(f"{browser.base_url}/admin/login/")
    browser.find_element(By.NAME, "username").send_keys(username)
    browser.find_element(By.NAME, "password").send_keys(password)
    submit(browser, browser.find_element(By.CSS_SELECTOR, "form#login-form [type=submit]"))
    assert browser.find_elements(By.ID, "user-tools"), f"{username} could not log in"


def screenshot(browser, name):
    """Save the page for the lessons when WORKBOOK_SCREENSHOTS names a folder."""
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(Path(SCREENSHOTS) / f"{name}.png"))


def downloaded(downloads, name, timeout=15):
    """The text of a finished download called `name`."""
    path = downloads / name
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and not any(downloads.glob("*.crdownload")):
            return path.read_bytes().decode("utf-8")
        time.sleep(0.1)
    raise AssertionError(f"no download {name}; the folder holds {sorted(downloads.iterdir())}")
