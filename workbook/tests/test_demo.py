"""`workbook serve`: the seeded demo site, served on localhost."""

import http.cookiejar
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model

from workbook import demo

from .test_cli import CONSOLE_SCRIPT

MODELS = [("basic_action", "Article"), ("export", "Article"), ("confirmation", "Article"),
          ("confirmation", "Comment"), ("confirmation", "FeaturedSlot"),
          ("conditional", "Article"), ("global", "Article"), ("global", "Category"),
          ("global", "ApiKey")]


def counts():
    return {f"{label}.{name}": apps.get_model(label, name).objects.count()
            for label, name in MODELS} | {"users": get_user_model().objects.count()}


@pytest.mark.django_db
def test_seeding_twice_adds_nothing():
    demo.seed()
    first = counts()
    demo.seed()

    assert counts() == first
    assert first["basic_action.Article"] == 300 and first["confirmation.Comment"] > 300
    editor = get_user_model().objects.get(username="editor")
    assert editor.has_perm("conditional.send_notifications")
    assert editor.has_perm("export.change_article")
    reader = get_user_model().objects.get(username="reader")
    assert reader.has_perm("global.view_category") and not reader.has_perm("global.change_category")
    assert get_user_model().objects.get(username="admin").check_password("admin")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_runs_a_usable_admin_on_localhost(tmp_path):
    port = free_port()
    env = {**os.environ, "WORKBOOK_DB": str(tmp_path / "demo.sqlite3")}
    env.pop("WORKBOOK_SOLUTIONS", None)
    server = subprocess.Popen(
        [sys.executable, "-c", CONSOLE_SCRIPT, "serve", "--solutions", "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        browser = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                login = browser.open(f"{base}/admin/login/").read().decode()
                break
            except OSError:
                assert time.monotonic() < deadline and server.poll() is None, "no server"
                time.sleep(0.3)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login)[1]
        form = urllib.parse.urlencode({"username": "admin", "password": "admin",
                                       "csrfmiddlewaretoken": token, "next": "/admin/"})
        request = urllib.request.Request(f"{base}/admin/login/", form.encode(),
                                         headers={"Referer": f"{base}/admin/login/"})
        assert "Log out" in browser.open(request).read().decode()
        page = browser.open(f"{base}/admin/basic_action/article/").read().decode()

        assert 'value="make_published"' in page, "--solutions serves the reference answers"
        assert "300 articles" in page
    finally:
        os.killpg(server.pid, signal.SIGINT)
        output = server.communicate(timeout=30)[0]
    assert "admin / admin" in output and "for local development only" in output
