"""What the graded tests share: drive the changelist as a browser does, and fail with a lesson.

Every failure a learner sees should say what was done, what came back and what to do next,
without a traceback into this module.
"""

import contextlib
import csv
import difflib
import inspect
import io
import logging
import os
import re
import threading
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin

import pytest
from django.contrib.admin import helpers
from django.core.mail.backends import locmem
from django.urls import NoReverseMatch, reverse

from . import metadata
from .apps import learner_frame


def expect(condition, message, *, task=None):
    """Fail the test with `message` alone (no traceback) unless `condition` holds.

    `task` files the failure under another task than the test's own (the plugin's "Task N"
    section), when what failed is that task's contract.
    """
    __tracebackhide__ = True
    if not condition:
        try:
            pytest.fail(message, pytrace=False)
        except pytest.fail.Exception as failure:
            failure.workbook_task = task
            raise


# What the learner's code raised, said in the workbook's format.

_RAISED_ADVICE = {
    "ProtectedError": (
        "delete() refused because other rows point to some selected ones with "
        "on_delete=PROTECT, and nothing caught it: the user would get a 'Server Error (500)' "
        "page. An error the data can cause is one to expect, twice: look for such rows "
        "before you ask (the page then says what is in the way and offers no Yes), and still "
        "catch it where you delete, telling the user with an ERROR message (the lesson's "
        "task says which)."
    ),
    "RestrictedError": (
        "delete() refused because other rows point to some selected ones with "
        "on_delete=RESTRICT, and nothing caught it: the user would get a 'Server Error (500)' "
        "page. Look for such rows before you ask, and still catch it where you delete, "
        "telling the user with an ERROR message."
    ),
    "MultipleObjectsReturned": (
        "get() found more rows than one: the queryset it ran on holds more than you think. "
        "An action's queryset holds the rows the user chose (on a change page, the one the "
        "page shows); a query that starts from the model's manager runs over the whole "
        "table, whatever the user chose. Which queryset does that line start from?"
    ),
    "FieldError": (
        "A queryset names a field or lookup the model does not have: compare the names at "
        "that line with the model in models.py."
    ),
    "FieldDoesNotExist": (
        "The model has no field by that name: compare the names at that line with the model "
        "in models.py."
    ),
    "TemplateDoesNotExist": (
        "Django found no template by that name: compare it with the template's path under "
        "the exercise's templates/ folder."
    ),
}
_RAISED_DEFAULT = (
    "Code of yours that raises while the admin handles a request gives the user a 'Server "
    "Error (500)' page. Fix that line. Only an error the data can cause is worth catching, in "
    "an action, and then the user is told with message_user."
)

# An error raised by a generator of the learner's while a streamed response is sent: the
# action returned long before, and the status and headers have gone out.
_RAISED_WHILE_STREAMING = (
    "That line ran while the streamed response was being sent, after your action had "
    "returned: by then the status (200 OK) and the headers have gone out, so the user gets "
    "neither an error page nor a message (the action is done, and an export sends none), only "
    "a download that stops short. Such an error has to be prevented before the response "
    "starts: check in the action what could fail, and make sure no value the data can hold "
    "(an empty date, say) makes the generator raise."
)

_MISSING_PERMISSION_METHOD = (
    "An action declared with permissions=[\"name\"] makes Django call "
    "has_name_permission(request) on the ModelAdmin before offering it. `manage.py check` "
    "reports a missing one (admin.E129) only for changelist actions: for an action offered on "
    "the change form alone, the first sign is this error on every change page. Write that "
    "method, or declare one of Django's own permissions (add, change, delete, view)."
)


def _template_of(error):
    """(template relative to the workbook, line, source) of a template error in the
    workbook's own templates, or None."""
    debug = getattr(error, "template_debug", None)
    name = str((debug or {}).get("name", ""))
    if not name.startswith(str(metadata.ROOT) + "/"):
        return None
    return name.removeprefix(str(metadata.ROOT) + "/"), debug["line"], debug["during"].strip()


def caused_by_learner(error):
    """Whether `error`'s traceback runs through an exercise's code or template."""
    return learner_frame(error) is not None or _template_of(error) is not None


def explain_raised(error, doing):
    """What the learner's code raised while `doing`, where, and what to do, in a few lines."""
    kind = type(error)
    name = kind.__qualname__ if kind.__module__ == "builtins" else (
        f"{kind.__qualname__} ({kind.__module__})"
    )
    text = error.args[0] if error.args and isinstance(error.args[0], str) else str(error)
    text = text if len(text) <= 300 else text[:297] + "..."
    lines = [f"{doing} raised {name}: {text}"]
    where = learner_frame(error)
    template = _template_of(error)
    if where is not None:
        path, line, function, source = where
        lines.append(f"  at {path}, line {line}" + (f", in {function}" if function else "")
                     + (f":\n      {source}" if source else ""))
    elif template is not None:
        lines.append("  at {}, line {}: {}".format(*template))
    else:
        lines.append("  (inside Django: no line of your code is in the traceback; look at "
                     "what your code hands to Django)")
    if issubclass(kind, AttributeError) and re.search(r"has_\w+_permission", text):
        lines.append(_MISSING_PERMISSION_METHOD)
    elif kind.__name__ in _RAISED_ADVICE:
        lines.append(_RAISED_ADVICE[kind.__name__])
    else:
        lines.append(_RAISED_WHILE_STREAMING if raised_while_streaming(error) else
                     _RAISED_DEFAULT)
    return "\n".join(lines)


def raised_while_streaming(error):
    """Whether `error` came out of a generator of an exercise's code that was run from
    outside Django's request handling: a streamed response's content being read, after the
    action that returned it."""
    frames = []
    tb = error.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    if any(f.f_globals.get("__name__", "").startswith("django.core.handlers") for f in frames):
        return False
    roots = (metadata.EXERCISES_DIR, metadata.SOLUTIONS_DIR)
    learner = [
        f for f in frames
        if not Path(f.f_code.co_filename).name.startswith("test_")
        and any(Path(f.f_code.co_filename).is_relative_to(root) for root in roots)
    ]
    return bool(learner) and bool(learner[0].f_code.co_flags & inspect.CO_GENERATOR)


def _send(doing, request, *args, **kwargs):
    """Call `request` (a test client's get or post): what it raises fails the test in the
    workbook's format, not as Django's traceback (the test client re-raises view errors)."""
    __tracebackhide__ = True
    try:
        return request(*args, **kwargs)
    except Exception as error:  # noqa: BLE001 - every error of the learner's code is reported
        # The worked example's own tests (lessons/) expect some errors: only a graded test,
        # or code of an exercise in the traceback, turns one into a workbook failure.
        if not (_in_graded_test() or caused_by_learner(error)):
            raise
        message = explain_raised(error, doing)
    fail_raised(message)


def _in_graded_test():
    return os.environ.get("PYTEST_CURRENT_TEST", "").startswith("exercises/")


def fail_raised(message):
    """Fail with `message` (from explain_raised), marked for the plugin, which leaves out
    Django's log of the same error ("Internal Server Error", with the traceback)."""
    __tracebackhide__ = True
    try:
        pytest.fail(message, pytrace=False)
    except pytest.fail.Exception as failure:
        failure.workbook_raised = True
        raise


class expect_num_queries:
    """`with expect_num_queries(n, info=...):` fails, with `info`, unless the block runs
    exactly `n` SQL queries on the default database (pytest-django's
    django_assert_num_queries, failing in the workbook's format)."""

    def __init__(self, count, info):
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        self.count, self.info = count, info
        self.queries = CaptureQueriesContext(connection)

    def __enter__(self):
        self.queries.__enter__()
        return self.queries

    def __exit__(self, kind, value, traceback):
        __tracebackhide__ = True
        self.queries.__exit__(kind, value, traceback)
        if kind is not None:
            return False
        ran = [q["sql"] for q in self.queries.captured_queries]
        shown = "\n".join(f"  {sql[:110]}" for sql in ran[:8])
        more = f"\n  ... and {len(ran) - 8} more" if len(ran) > 8 else ""
        expect(
            len(ran) == self.count,
            f"{self.info}\nExpected {self.count} SQL queries; {len(ran)} ran"
            + (f", the first of them:\n{shown}{more}" if ran else "."),
        )
        return False


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
    response = _send(f"Loading the {model.__name__} changelist", client.get,
                     changelist_url(model, query, site))
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
    """(level_tag, text) of each message shown on the page the response ended on: an answer
    without an admin page (a 400, a bare HttpResponse) fails the test saying what it was."""
    __tracebackhide__ = True
    context = getattr(response, "context", None)
    if context is None or "messages" not in context:
        from django.conf import settings

        refused = (
            f" Django answers 400 to a request it refuses, such as a POST with more fields "
            f"than settings.DATA_UPLOAD_MAX_NUMBER_FIELDS ({settings.DATA_UPLOAD_MAX_NUMBER_FIELDS}"
            ") allows: count what the form posts." if response.status_code == 400 else "")
        expect(False, f"The request was answered {response.status_code} "
               f"{getattr(response, 'reason_phrase', '')} without an admin page, so no message "
               "could be shown." + refused)
    return [(m.level_tag, str(m)) for m in context["messages"]]


_NUMBER = re.compile(r"\d[\d,]*")
# How message_differences starts its note on singular and plural, for a suite's own advice.
PLURAL_MIXED_UP = "Singular and plural are mixed up"


def _shape(text):
    """TEXT with its numbers as # and its words' plural s dropped: what stays the same when
    only a count, and the forms that agree with it, change."""
    return re.sub(r"\b(\w+?)s\b", r"\1", _NUMBER.sub("#", text))


def _counts(text):
    return [int(n.replace(",", "")) for n in _NUMBER.findall(text)]


def _word_forms(text):
    """The words of `text` with singular and plural made alike ("article was" ~ "articles
    were")."""
    forms = {"was": "were", "is": "are", "a": "", "an": "", "has": "have"}
    words = [w.lower().rstrip(".,:;") for w in text.split()]
    return [forms.get(w, w.removesuffix("s")) for w in words if forms.get(w, w)]


def _first_difference(expected, found):
    """The first words where `found` differs from `expected`, with a word of context."""
    want, got = expected.split(), found.split()
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, want, got).get_opcodes():
        if op != "equal":
            start_i, start_j = max(i1 - 1, 0), max(j1 - 1, 0)
            return " ".join(want[start_i:i2 + 1]), " ".join(got[start_j:j2 + 1])
    return expected, found


def message_differences(expected, shown):
    """What differs between the messages `expected` and those `shown`, [(level, text)] each,
    as sentences: the level, the count or the wording of each message."""
    left = list(shown)
    notes = []
    for level, text in expected:
        if (level, text) in left:
            left.remove((level, text))
            continue
        close = sorted(
            left, key=lambda m: -difflib.SequenceMatcher(None, m[1], text).ratio()
        )
        if not close or difflib.SequenceMatcher(None, close[0][1], text).ratio() < 0.5:
            notes.append(f"No message reads like the [{level}] one.")
            continue
        found_level, found = close[0]
        left.remove(close[0])
        if found_level != level:
            notes.append(
                f"The level is {found_level.upper()}; it should be {level.upper()}"
                + (" (the words are right)." if found == text else ".")
            )
        if found == text:
            continue
        if _NUMBER.sub("#", found) == _NUMBER.sub("#", text) or (
                _counts(found) != _counts(text) and _shape(found) == _shape(text)):
            # The same words but for the numbers (and the forms that follow them).
            note = (f"The count differs: it says {', '.join(map(str, _counts(found)))}, "
                    f"expected {', '.join(map(str, _counts(text)))}.")
            if "delet" in text.lower() and sum(_counts(found)) > sum(_counts(text)):
                note += (" delete() returns every row it deleted, the rows deleted with them "
                         "(on_delete=CASCADE) included: count the selected articles "
                         "themselves.")
            elif "delet" in text.lower() and not any(_counts(found)):
                note += (" A count taken once the rows are deleted finds none left: count "
                         "what you delete before you delete it.")
            notes.append(note)
        elif (_counts(text) and _counts(found) == _counts(text)
              and _word_forms(found) == _word_forms(text)):
            # Only a message with a count has forms that ngettext picks between.
            want, got = _first_difference(text, found)
            notes.append(
                f"{PLURAL_MIXED_UP} for a count of "
                f"{', '.join(map(str, _counts(text)))}: expected “{want}”, found “{got}”. "
                "ngettext picks the form by the count."
            )
        else:
            want, got = _first_difference(text, found)
            notes.append(f"The wording differs: expected “{want}”, found “{got}”.")
    notes += [f"An extra message is shown: [{level}] {text}" for level, text in left]
    return notes


def listed_differences(expected, shown):
    """message_differences as lines to add to a failure message ("" when none)."""
    notes = message_differences(expected, shown)
    return "".join(f"  - {note}\n" for note in notes)


def expect_message(response, level_tag, text, action):
    """Fail unless the page shows exactly the message `text` at `level_tag`."""
    __tracebackhide__ = True
    shown = messages_of(response)
    shown_text = "\n".join(f"  [{tag}] {msg}" for tag, msg in shown) or "  (no message at all)"
    expect(
        (level_tag, text) in shown,
        f"After running '{action}' the changelist should show:\n  [{level_tag}] {text}\n"
        f"It shows:\n{shown_text}\n"
        f"What differs:\n{listed_differences([(level_tag, text)], shown)}"
        "The lesson's task gives each message, for one article and for many.",
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
    __tracebackhide__ = True
    if response.streaming:
        return _send("Reading the response's content", lambda: b"".join(
            response.streaming_content))
    return response.content


def csv_rows(response):
    """The rows of a CSV download, read back with Python's csv module, as UTF-8."""
    text = content_of(response).decode("utf-8")
    return list(csv.reader(io.StringIO(text, newline="")))


class _Forms(HTMLParser):
    """The forms of a page, each as its action and its fields, as a browser would see them:
    inputs, the selected options of each select (the first when none is), text areas."""

    def __init__(self):
        super().__init__()
        self.forms = []
        self.links = []
        self._select = None  # [name, chosen values, first option's value]
        self._textarea = None  # [name, text]

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self.forms.append({"action": attrs.get("action"), "fields": [], "buttons": []})
        elif tag in ("input", "button") and self.forms and attrs.get("name"):
            kind = attrs.get("type", "submit" if tag == "button" else "text")
            if kind in ("checkbox", "radio") and "checked" not in attrs:
                return
            entry = (attrs["name"], attrs.get("value", "on" if kind == "checkbox" else ""))
            self.forms[-1]["buttons" if kind == "submit" else "fields"].append(entry)
        elif tag == "select" and self.forms and attrs.get("name"):
            self._select = [attrs["name"], [], None, "multiple" in attrs]
        elif tag == "option" and self._select is not None:
            value = attrs.get("value", "")
            if self._select[2] is None:
                self._select[2] = value
            if "selected" in attrs:
                self._select[1].append(value)
        elif tag == "textarea" and self.forms and attrs.get("name"):
            self._textarea = [attrs["name"], ""]
        elif tag == "a" and "href" in attrs:
            self.links.append(attrs["href"])

    def handle_data(self, data):
        if self._textarea is not None:
            self._textarea[1] += data

    def handle_endtag(self, tag):
        if tag == "select" and self._select is not None:
            name, chosen, first, multiple = self._select
            if not chosen and not multiple and first is not None:
                chosen = [first]
            self.forms[-1]["fields"] += [(name, value) for value in chosen]
            self._select = None
        elif tag == "textarea" and self._textarea is not None:
            name, text = self._textarea
            # A browser drops the one newline that may follow the opening tag.
            self.forms[-1]["fields"].append((name, text.removeprefix("\n")))
            self._textarea = None


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
    data = post_data(form["fields"])
    data[button] = dict(form["buttons"])[button]
    return _send(f"Pressing '{button}' on the page", client.post, form_url(response, form),
                 data, follow=follow)


def post_data(fields):
    """[(name, value)] as the POST body a browser sends: a name once per value."""
    data = {}
    for name, value in fields:
        data.setdefault(name, []).append(value)
    return data


def form_url(response, form):
    """Where `form` of the page `response` posts to, as a browser resolves it: its action,
    which may be relative ("?_changelist_filters=..."), against the page's URL; without one,
    the page's own URL, query string included."""
    return urljoin(response.wsgi_request.get_full_path(), form["action"] or "")


# The change form: since Django 6.1 it may carry an action bar of its own.

CHANGE_FORM_ACTION = "CHANGE_FORM-action"
OLD_GET_ACTIONS = (
    "If your ModelAdmin overrides get_actions(), does it take action_location and pass it on "
    "to super()? An override without it (or with only **kwargs) makes Django 6.1 offer no "
    "action on any change form, without an error."
)


def _named(obj, longest=40):
    text = str(obj)
    return repr(text if len(text) <= longest else text[:longest - 3] + "...")


@contextlib.contextmanager
def refusals_unlogged(logger_name="django.request"):
    """Leave out Django's log of the refusals and errors a test provokes on purpose (403,
    400, 500; with "django.test", a robust on_commit() callback that raised): a failure
    report then shows the test's own message, not their tracebacks."""
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def change_url(obj, query="", site="admin"):
    opts = obj._meta
    url = reverse(f"{site}:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])
    return f"{url}?{query}" if query else url


def change_page(client, obj, query="", site="admin"):
    """GET the change page of `obj` (a 200 page, or the test fails saying what came back)."""
    __tracebackhide__ = True
    url = change_url(obj, query, site)
    response = _send(f"Loading the change page of {obj._meta.verbose_name} {obj.pk}",
                     client.get, url)
    expect(
        response.status_code == 200,
        f"GET {url} answered {response.status_code}, not 200"
        + (f" (a redirect to {response.url})." if response.status_code == 302 else ".")
    )
    return response


def change_form_actions(response):
    """The change page's action dropdown, as {name: label}, without the blank choice; {} when
    the page has no action bar."""
    # A view called directly answers an unrendered TemplateResponse: its context_data.
    context = getattr(response, "context_data", None) or response.context
    form = context["action_form"]
    if form is None:
        return {}
    return {name: str(label) for name, label in form.fields["action"].choices if name}


def choose_action(client, obj, action, query="", site="admin"):
    """The change page of `obj`, with its form as a browser would post it once the user
    picked `action` in the page's action dropdown: (page, url, fields). Fails with
    directions when the page offers no such action."""
    __tracebackhide__ = True
    page = change_page(client, obj, query, site)
    offered = change_form_actions(page)
    expect(
        action in offered,
        f"The change page of {_named(obj)} offers this user no action named '{action}'.\n"
        f"Actions offered there now: {', '.join(sorted(offered)) or 'none'}.\n"
        "A change page offers an action when the action's location includes the change form "
        "(the default is the changelist only), the ModelAdmin's actions name it and, if it "
        f"declares permissions, the user holds one. {OLD_GET_ACTIONS}",
    )
    form = next(
        (f for f in parse_page(page).forms if any(n == CHANGE_FORM_ACTION for n, _ in f["fields"])),
        None,
    )
    expect(form is not None, "The change page has no form holding its action dropdown.")
    fields = [(n, v) for n, v in form["fields"] if n != CHANGE_FORM_ACTION]
    fields.append((CHANGE_FORM_ACTION, action))
    return page, form_url(page, form), fields


def press(client, url, fields, button, value="", follow=False):
    """POST `fields` ([(name, value)]) and the pressed `button` to `url`, as a browser does."""
    __tracebackhide__ = True
    data = post_data(fields)
    data[button] = value
    return _send(f"Pressing '{button}' on the change page", client.post, url, data,
                 follow=follow)


def run_on_change_page(client, obj, action, query="", site="admin", follow=False):
    """Pick `action` on the change page of `obj` and press Run, as the user does."""
    __tracebackhide__ = True
    _, url, fields = choose_action(client, obj, action, query, site)
    return press(client, url, fields, "index", "0", follow=follow)


def post_change_form_action(client, obj, action, selected=None, site="admin", follow=False):
    """POST what the change page's Run button sends, built by hand (a forged POST): the
    prefixed action, `index`, and the hidden `_selected_action` (`obj`'s own pk unless
    `selected` says otherwise)."""
    __tracebackhide__ = True
    data = {
        CHANGE_FORM_ACTION: action,
        "CHANGE_FORM-select_across": "0",
        "index": "0",
        helpers.ACTION_CHECKBOX_NAME: [str(pk) for pk in (selected or [obj.pk])],
    }
    with refusals_unlogged():
        return _send(f"Posting '{action}' to the change page", client.post,
                     change_url(obj, site=site), data, follow=follow)


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


def staff_client(user_model, app_label, codenames, username):
    """A test client logged in as a staff user holding `codenames` of `app_label` only."""
    from django.test import Client

    client = Client()
    login_staff(client, user_model, *[f"{app_label}.{c}" for c in codenames],
                username=username)
    return client


class RecordingEmailBackend(locmem.EmailBackend):
    """The test outbox, also recording each send_messages() call as (connection, count).

    Point MAILERS at it to see how many connections an action opened for its emails.
    """

    batches = []

    def send_messages(self, messages):
        RecordingEmailBackend.batches.append((id(self), len(messages)))
        return super().send_messages(messages)


class CountingEmailBackend(locmem.EmailBackend):
    """A mail server far away: it counts each send_messages() call's messages, as
    `batches`, and keeps none of them, so a test can measure the sender's memory alone."""

    batches = []

    def send_messages(self, messages):
        messages = list(messages)
        CountingEmailBackend.batches.append(len(messages))
        return len(messages)


class RefusingEmailBackend(locmem.EmailBackend):
    """A mail server that is down: every send_messages() raises."""

    def send_messages(self, messages):
        raise ConnectionRefusedError("the mail server is down")


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
    return response, [without_cursor(q["sql"]) for q in own if table in q["sql"]]


def without_cursor(sql):
    """The SELECT itself, where PostgreSQL runs it through a server-side cursor.

    On PostgreSQL, `.iterator()` declares a cursor for its SELECT and fetches the rows in
    batches (FETCH is not logged as a query): "DECLARE ... CURSOR WITH HOLD FOR SELECT ...".
    It is one query on either database.
    """
    declared = re.match(
        r'DECLARE "[^"]+" (?:NO )?(?:SCROLL )?CURSOR (?:WITH HOLD )?FOR (.*)', sql, re.S
    )
    return declared.group(1) if declared else sql


def refuses_nul(model, **fields):
    """Whether the database refuses to store a NUL character in text, as PostgreSQL does
    (SQLite keeps it). Where it is refused, no exported cell can start with one."""
    from django.db import DataError, connection, transaction

    if connection.vendor != "postgresql":
        return False
    with pytest.raises(DataError, match="NUL"), transaction.atomic():
        model.objects.create(**fields)
    return True


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
        lines = _send("Reading the response's content",
                      lambda: sum(piece.count(b"\n") for piece in pieces))
        return tracemalloc.get_traced_memory()[1], lines
    finally:
        if not was_tracing:
            tracemalloc.stop()


def statement_kinds(client, model, action, selected, **options):
    """What the action itself ran on `model`'s table, as kinds ("UPDATE", "COUNT", "SELECT",
    ...), and the statements listed for a failure message. OPTIONS go to action_queries.

    Django's own counts for the changelist come before the action and are not included.
    """
    _, sqls = action_queries(client, model, action, selected, **options)
    kinds = [
        "COUNT" if sql.startswith("SELECT COUNT(") else sql.split(" ", 1)[0] for sql in sqls
    ]
    listing = "\n".join(f"  {sql[:100]}" for sql in sqls) or "  (none)"
    return kinds, listing


def needs_row_locks(connection):
    """Skip, on a database without row locks (SQLite), a test that proves them."""
    if not connection.features.has_select_for_update:
        pytest.skip(
            f"{metadata.POSTGRESQL_ONLY}: SQLite has no row locks to prove. CI runs it on "
            "PostgreSQL; so can you, with DATABASE_URL (README: On PostgreSQL)."
        )


class _Nesting(HTMLParser):
    """Every tag closed in the order it was opened, as a browser needs to read a page right."""

    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta",
            "source", "track", "wbr"}

    def __init__(self):
        super().__init__()
        self.open = []
        self.problems = []

    def handle_starttag(self, tag, attrs):
        if tag not in self.VOID:
            self.open.append((tag, self.getpos()[0]))

    def handle_endtag(self, tag):
        line = self.getpos()[0]
        if tag in self.VOID:
            return
        if self.open and self.open[-1][0] == tag:
            self.open.pop()
        elif self.open:
            self.problems.append(f"line {line}: </{tag}> closes <{self.open[-1][0]}> "
                                 f"of line {self.open[-1][1]}")
        else:
            self.problems.append(f"line {line}: </{tag}> closes nothing")


def expect_well_formed(response, what):
    __tracebackhide__ = True
    nesting = _Nesting()
    nesting.feed(response.content.decode())
    nesting.close()
    problems = nesting.problems + [f"line {line}: <{tag}> is never closed"
                                   for tag, line in nesting.open]
    expect(
        not problems,
        f"The HTML of {what} is not well formed, so browsers guess how to draw it:\n  "
        + "\n  ".join(problems[:5])
        + "\nClose every tag you open in your template, in the reverse order.",
    )


# Two clerks at once, in an order the test chooses (PostgreSQL: needs_row_locks first)


class Clerk(threading.Thread):
    """One clerk's request in a thread of its own, on a connection of its own (Django's are
    per thread), closed at the end. What it answered, or raised, is kept for the test."""

    def __init__(self, name, press):
        super().__init__(name=name, daemon=True)
        self.press, self.answer, self.error = press, None, None

    def run(self):
        from django.db import connection as own

        try:
            self.answer = self.press()
        except Exception as error:  # noqa: BLE001 - the test says what it was
            self.error = error
        finally:
            own.close()

    def outcome(self):
        if self.error is not None:
            return f"{self.name}: {type(self.error).__name__}: {str(self.error).strip()}"
        status = getattr(self.answer, "status_code", self.answer)
        return f"{self.name}: answered {status}"


@contextlib.contextmanager
def query_parameters_limited(limit):
    """SQLite's limit on one statement's parameters lowered to LIMIT on every connection, the
    open ones and those opened meanwhile (a worker reconnects between tasks), as a build with
    a smaller SQLITE_MAX_VARIABLE_NUMBER has it. Other databases are left as they are."""
    import sqlite3

    from django.db import connections
    from django.db.backends.signals import connection_created

    variables = sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER
    before = {}

    def lower(sender=None, connection=None, **kwargs):
        if connection.vendor == "sqlite" and connection.connection is not None:
            before.setdefault(id(connection.connection), (
                connection.connection, connection.connection.getlimit(variables)))
            connection.connection.setlimit(variables, limit)

    connection_created.connect(lower)
    for open_connection in connections.all():
        lower(connection=open_connection)
    try:
        yield
    finally:
        connection_created.disconnect(lower)
        for raw, value in before.values():
            with contextlib.suppress(sqlite3.ProgrammingError):  # closed meanwhile
                raw.setlimit(variables, value)


@contextlib.contextmanager
def row_held(model, pk):
    """Lock one row from a connection of the test's own until the block ends. A clerk who
    locks it meanwhile waits there, so the test, not the machine's speed, decides how far
    each clerk gets before the other starts."""
    from django.db import transaction

    held, release = threading.Event(), threading.Event()

    def hold():
        with transaction.atomic():
            list(model.objects.select_for_update().filter(pk=pk).values_list("pk"))
            held.set()
            release.wait(HOLD_LIMIT)

    holder = Clerk("holder", hold)
    holder.start()
    held.wait(HOLD_LIMIT)
    try:
        yield
    finally:
        release.set()
        holder.join(HOLD_LIMIT)


# A bound for a test that went wrong, not a speed the machine must reach: a lock wait that
# is coming is seen within milliseconds, even on a loaded machine.
HOLD_LIMIT = 120


def wait_for_lock_waiters(count, what, clerks=()):
    """Return once `count` connections of this test database wait for a row lock; fail at
    once if one of `clerks` has finished instead."""
    __tracebackhide__ = True
    deadline = time.monotonic() + HOLD_LIMIT
    while True:
        waiting = len(lock_waiters())
        if waiting >= count:
            return
        done = [clerk.outcome() for clerk in clerks if not clerk.is_alive()]
        expect(not done and time.monotonic() < deadline,
               f"{what}: {waiting} of the {count} requests expected to wait for a row the "
               f"test holds locked do" + (f"; instead {'; '.join(done)}" if done else
                                          f" after {HOLD_LIMIT} s")
               + ". Does the action lock the rows it changes (select_for_update, inside a "
               "transaction), and refund every paid order it was given?")
        time.sleep(0.01)


_WORKER = """
import sys

import django

django.setup()
from django.conf import settings
from django.core.management import call_command

settings.MAILERS = {"default": {"BACKEND": "django.core.mail.backends.filebased.EmailBackend",
                                "OPTIONS": {"file_path": sys.argv[1]}}}
call_command("db_worker", "--batch", "--no-startup-delay", "--no-reload", verbosity=0)
"""


class WorkerProcess:
    """django-tasks-db's worker (`db_worker --batch`) in a process of its own, on this test's
    PostgreSQL database, with the code under test (yours, or the answers with --solutions).
    It writes its mails as files into MAIL_DIR: `mails()` counts them."""

    def __init__(self, mail_dir):
        import subprocess
        import sys

        from django.db import connection

        from . import databases, metadata

        self.mail_dir = mail_dir
        url = databases.named(os.environ[databases.VARIABLE], connection.settings_dict["NAME"])
        env = {**os.environ, databases.VARIABLE: url,
               "DJANGO_SETTINGS_MODULE": "workbook.settings"}
        self.process = subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(mail_dir)], cwd=metadata.ROOT, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        self.name = "the worker"

    def is_alive(self):
        return self.process.poll() is None

    def outcome(self):
        from django_tasks_db.models import DBTaskResult

        output = self.process.stdout.read().strip() if not self.is_alive() else ""
        tasks = [f"{r.status}" + (f" ({r.traceback.strip().splitlines()[-1]})" if r.traceback
                                   else "")
                 for r in DBTaskResult.objects.order_by("enqueued_at")]
        return (f"the worker ended (exit {self.process.returncode}), the tasks: "
                f"{', '.join(tasks) or 'none'}" + (f"; it printed: {output[-300:]}" if output
                                                    else ""))

    def kill(self):
        """SIGKILL: the end of a worker whose machine lost power, with no chance to clean up."""
        self.process.kill()
        self.process.wait()

    def finish(self):
        __tracebackhide__ = True
        try:
            self.process.wait(HOLD_LIMIT)
        except Exception:
            self.kill()
        expect(self.process.returncode == 0, self.outcome())

    def mails(self):
        """The emails the worker sent, over all its runs."""
        if not self.mail_dir.exists():
            return []
        return [message for path in sorted(self.mail_dir.iterdir())
                for message in path.read_text().split("-" * 79 + "\n") if message.strip()]


def lock_waiters():
    """The PostgreSQL backends of this test database that wait for a lock, by pid."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity "
                       "WHERE datname = current_database() AND wait_event_type = 'Lock'")
        return [pid for (pid,) in cursor.fetchall()]


def wait_until_gone(pids):
    """Return once none of these PostgreSQL backends is left: a killed client's transaction
    is rolled back when its backend notices, which ends it."""
    __tracebackhide__ = True
    from django.db import connection

    deadline = time.monotonic() + HOLD_LIMIT
    while True:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)",
                           [list(pids)])
            if not cursor.fetchone()[0]:
                return
        expect(time.monotonic() < deadline,
               f"The database still serves the killed worker after {HOLD_LIMIT} s.")
        time.sleep(0.01)
