"""What the graded tests share: drive the changelist as a browser does, and fail with a lesson.

Every failure a learner sees should say what was done, what came back and what to do next,
without a traceback into this module.
"""

import csv
import io
from html.parser import HTMLParser

import pytest
from django.contrib.admin import helpers
from django.core.mail.backends import locmem
from django.urls import NoReverseMatch, reverse


def expect(condition, message):
    """Fail the test with `message` alone (no traceback) unless `condition` holds."""
    __tracebackhide__ = True
    if not condition:
        pytest.fail(message, pytrace=False)


def changelist_url(model, query="", site="admin"):
    __tracebackhide__ = True
    opts = model._meta
    try:
        url = reverse(f"{site}:{opts.app_label}_{opts.model_name}_changelist")
    except NoReverseMatch:
        url = None
    expect(
        url is not None,
        f"The admin has no {model.__name__} changelist. Keep {model.__name__}Admin "
        f"registered with @admin.register({model.__name__}).",
    )
    return f"{url}?{query}" if query else url


def offered_actions(client, model, query="", site="admin"):
    """The action dropdown of the changelist page, as {name: label}, without the blank choice."""
    __tracebackhide__ = True
    response = client.get(changelist_url(model, query, site))
    expect(
        response.status_code == 200,
        f"GET {changelist_url(model, query, site)} answered {response.status_code}, not 200.",
    )
    form = response.context["action_form"]
    if form is None:
        return {}
    return {name: str(label) for name, label in form.fields["action"].choices if name}


def expect_action_offered(client, model, name, description=None, site="admin"):
    """Fail with directions unless the changelist offers action `name` (with `description`)."""
    __tracebackhide__ = True
    offered = offered_actions(client, model, site=site)
    admin_class = f"{model.__name__}Admin"
    expect(
        name in offered,
        f"The {model.__name__} changelist offers this user no action named '{name}'.\n"
        f"Actions offered now: {', '.join(sorted(offered)) or 'none'}.\n"
        f"A changelist offers an action when {admin_class}.actions names it and, if the "
        "action declares permissions, the user holds one of them; a name that matches "
        "nothing is dropped without a word (lesson 01, 'What an action is' and 'Who may run "
        "an action').",
    )
    if description is not None:
        expect(
            offered[name] == description,
            f"The action '{name}' is labelled {offered[name]!r} in the dropdown; "
            f"expected {description!r}. Where does the dropdown's label come from "
            "(lesson 01, 'What an action is')?",
        )


def post_action(client, model, action, selected, *, select_across=False, query="",
                site="admin", follow=True, **extra):
    """POST the changelist's action form: what pressing the action button sends.

    `selected` are the ticked rows' primary keys (`_selected_action`); `index` says which
    action bar was used (the top one; a bottom one exists with `actions_on_bottom = True`);
    `select_across` is "Select all N" across pages.
    """
    data = {
        "action": action,
        "index": 0,
        "select_across": "1" if select_across else "0",
        helpers.ACTION_CHECKBOX_NAME: [str(pk) for pk in selected],
        **extra,
    }
    return client.post(changelist_url(model, query, site), data, follow=follow)


def messages_of(response):
    """(level_tag, text) of each message shown on the page the response ended on."""
    return [(m.level_tag, str(m)) for m in response.context["messages"]]


def expect_message(response, level_tag, text, action):
    """Fail unless the page shows exactly the message `text` at `level_tag`."""
    __tracebackhide__ = True
    shown = messages_of(response)
    shown_text = "\n".join(f"  [{tag}] {msg}" for tag, msg in shown) or "  (no message at all)"
    expect(
        (level_tag, text) in shown,
        f"After running '{action}' the changelist should show:\n  [{level_tag}] {text}\n"
        f"It shows:\n{shown_text}\n"
        "Compare the level and the words: the lesson's task gives each message, for one "
        "article and for many.",
    )


def expect_download(response, action, content_type, filename):
    """Fail unless `response` is a file download with this type and file name."""
    __tracebackhide__ = True
    expect(
        response.status_code == 200,
        f"'{action}' answered {response.status_code}"
        + (f" (a redirect to {response.url})" if response.status_code == 302 else "")
        + ", not 200 with a file. An action that produces a file returns the response "
        "holding it; returning None sends the user back to the changelist.",
    )
    expect(
        response.get("Content-Type") == content_type,
        f"The download's Content-Type is {response.get('Content-Type')!r}; "
        f"expected {content_type!r}.",
    )
    disposition = f'attachment; filename="{filename}"'
    expect(
        response.get("Content-Disposition") == disposition,
        f"The download's Content-Disposition is {response.get('Content-Disposition')!r}; "
        f"expected {disposition!r}, which makes the browser save it as {filename}.",
    )


def content_of(response):
    """The whole body, whether the response streams or not."""
    if response.streaming:
        return b"".join(response.streaming_content)
    return response.content


def csv_rows(response):
    """The rows of a CSV download, read back with Python's csv module, as UTF-8."""
    text = content_of(response).decode("utf-8")
    return list(csv.reader(io.StringIO(text, newline="")))


class _Forms(HTMLParser):
    """The forms of a page, each as its action and its fields, as a browser would see them."""

    def __init__(self):
        super().__init__()
        self.forms = []
        self.links = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self.forms.append({"action": attrs.get("action"), "fields": [], "buttons": []})
        elif tag in ("input", "button") and self.forms and attrs.get("name"):
            kind = attrs.get("type", "submit" if tag == "button" else "text")
            entry = (attrs["name"], attrs.get("value", ""))
            self.forms[-1]["buttons" if kind == "submit" else "fields"].append(entry)
        elif tag == "a" and "href" in attrs:
            self.links.append(attrs["href"])


def parse_page(response):
    """The page's forms and links, parsed once per response."""
    if not hasattr(response, "_workbook_page"):
        response._workbook_page = _Forms()
        response._workbook_page.feed(response.content.decode())
    return response._workbook_page


def form_with_button(response, button):
    """The page's form that has a submit button named `button`, or None."""
    return next(
        (f for f in parse_page(response).forms if any(n == button for n, _ in f["buttons"])),
        None,
    )


def submit_form(client, response, button, follow=True):
    """Press the button named `button` on the page `response` shows, as a browser would."""
    __tracebackhide__ = True
    form = form_with_button(response, button)
    expect(form is not None, f"The page has no form with a submit button named {button!r}.")
    data = {}
    for name, value in form["fields"]:
        data.setdefault(name, []).append(value)
    data[button] = dict(form["buttons"])[button]
    # A form without an action attribute posts to the page's own URL, query string included.
    url = form["action"] or response.wsgi_request.get_full_path()
    return client.post(url, data, follow=follow)


def create_staff(user_model, username, *permissions, password=None, email=""):
    """A staff user holding only `permissions`, each named "app_label.codename"."""
    from django.contrib.auth.models import Permission

    user = user_model.objects.create_user(username, email=email, password=password,
                                          is_staff=True)
    for permission in permissions:
        app_label, codename = permission.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    return user


def login_staff(client, user_model, *permissions, username="staff", email=""):
    """Log `client` in as a staff user holding only `permissions` ("app_label.codename")."""
    user = create_staff(user_model, username, *permissions, email=email)
    client.force_login(user)
    return user


class RecordingEmailBackend(locmem.EmailBackend):
    """The test outbox, also recording each send_messages() call as (connection, count).

    Point MAILERS at it to see how many connections an action opened for its emails.
    """

    batches = []

    def send_messages(self, messages):
        RecordingEmailBackend.batches.append((id(self), len(messages)))
        return super().send_messages(messages)


def action_queries(client, model, action, selected, **options):
    """POST the action (`post_action`, not following a redirect), and return the response
    and the SQL run on `model`'s table by the action itself, a streamed body read to the end.

    Counting starts when Django hands the POST to `response_action`: the changelist's own
    counts come before it, and queries on other tables (the session, the user) are left out.
    """
    from unittest import mock

    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.urls import resolve

    url = changelist_url(model, options.get("query", ""), options.get("site", "admin"))
    model_admin = resolve(url.partition("?")[0]).func.model_admin
    respond = model_admin.response_action
    table = f'"{model._meta.db_table}"'
    with CaptureQueriesContext(connection) as queries:
        start = []

        def measured(request, queryset, *args, **kwargs):
            start.append(len(queries.captured_queries))
            return respond(request, queryset, *args, **kwargs)

        with mock.patch.object(model_admin, "response_action", measured):
            response = post_action(client, model, action, selected, follow=False, **options)
        body = content_of(response)
    if response.streaming:
        response.streaming_content = [body]  # read once above; the caller may read it again
    own = queries.captured_queries[start[0]:] if start else []
    return response, [q["sql"] for q in own if table in q["sql"]]


def peak_memory_while_reading(post):
    """The most memory Python held at once while `post()` ran and its response was read to
    the end, and the number of lines of that response.

    tracemalloc counts every object Python allocates: the rows fetched, the CSV text, the
    response. A streamed export holds one batch at a time, so its peak does not grow with
    the rows; a file built whole, or a queryset read whole, grows with them.
    """
    import tracemalloc

    was_tracing = tracemalloc.is_tracing()
    tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        response = post()
        pieces = response.streaming_content if response.streaming else [response.content]
        lines = sum(piece.count(b"\n") for piece in pieces)
        return tracemalloc.get_traced_memory()[1], lines
    finally:
        if not was_tracing:
            tracemalloc.stop()


def statement_kinds(client, model, action, selected):
    """What the action itself ran on `model`'s table, as kinds ("UPDATE", "COUNT", "SELECT",
    ...), and the statements listed for a failure message.

    Django's own counts for the changelist come before the action and are not included.
    """
    _, sqls = action_queries(client, model, action, selected)
    kinds = [
        "COUNT" if sql.startswith("SELECT COUNT(") else sql.split(" ", 1)[0] for sql in sqls
    ]
    listing = "\n".join(f"  {sql[:100]}" for sql in sqls) or "  (none)"
    return kinds, listing
