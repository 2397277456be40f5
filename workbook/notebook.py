"""Django inside a Jupyter notebook, and small helpers that show what the admin does.

Every notebook starts with

    from workbook.notebook import *
    setup(solutions=False)

which gives it a fresh database with every table (SQLite in memory, or with $DATABASE_URL a
database of the kernel's own on that server), four users and a fixed "today".
The notebooks step through the lending desk, the lessons' worked example (lessons/lending/).
Their last section, "Now your own code", runs the same steps on your exercise only when
WORKBOOK_NOTEBOOK_MINE=1 (`workbook notebook N --mine` sets it on a copy of the notebook).
Output is kept deterministic (fixed data and dates, no timestamps, no tokens, no memory
addresses), so nbval can check each notebook against its committed outputs.
"""

import inspect
import os
import re
import textwrap
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date

from . import metadata

USERS = {
    # username: permissions ("app_label.codename"); "admin" is a superuser. The lending
    # desk's for the notebooks, exercise 04's for its "Now your own code" section.
    "admin": None,
    "editor": [
        "lending.view_loan", "lending.change_loan", "lending.send_reminders",
        "lending.view_member", "lending.change_member",
        "conditional.view_article", "conditional.change_article",
        "conditional.delete_article", "conditional.send_notifications",
    ],
    "writer": [
        "lending.view_loan", "lending.change_loan", "lending.view_member",
        "conditional.view_article", "conditional.change_article",
    ],
    "reader": ["lending.view_loan", "lending.view_member", "conditional.view_article"],
}
# "Today" in every notebook, so that due dates, renewals and overdue loans read the same on
# every run.
TODAY = date(2025, 6, 2)
MINE_VAR = "WORKBOOK_NOTEBOOK_MINE"
# pytest's arguments that check the notebooks against their committed outputs.
NBVAL = ["-p", "nbval", "--nbval", "--nbval-current-env", "notebooks/"]


def nbval():
    """pytest's arguments for the notebooks; on PostgreSQL, SQL text is compared by kind only
    (workbook/nbval-postgresql.cfg says why)."""
    from . import databases

    if databases.is_postgresql():
        return [*NBVAL, "--nbval-sanitize-with", "workbook/nbval-postgresql.cfg"]
    return NBVAL


def setup(solutions=False):
    """Set Django up for this kernel: your code in exercises/, or the answers with True."""
    # ipykernel 7 runs every cell inside a running asyncio event loop, and Django refuses
    # ORM calls made from such a context (SynchronousOnlyOperation) unless told that this
    # synchronous use is intended. A notebook is one user, one thread: it is.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    os.environ["WORKBOOK_SOLUTIONS"] = "1" if solutions else "0"
    os.environ["WORKBOOK_DB"] = ":memory:"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "workbook.settings")

    import django
    from django.core.management import call_command
    from django.db import connection
    from django.test.utils import setup_test_environment

    django.setup()
    # Emails go to django.core.mail.outbox, and responses keep their template context.
    setup_test_environment()
    if connection.vendor == "sqlite":
        call_command("migrate", verbosity=0)
    else:
        _new_database(connection)
    _create_users()
    _freeze_today()
    mode = "the reference answers (solutions/)" if solutions else "your code (exercises/)"
    print(f"Django is set up with {mode}, a new empty database, users {', '.join(USERS)}, "
          f"and today is {TODAY.isoformat()}.")


def _new_database(connection):
    """On a server ($DATABASE_URL): a database of this kernel's own, as a test run makes one
    (migrated, its ids from 1), dropped when the kernel ends."""
    import atexit

    from . import databases

    name = connection.settings_dict["NAME"]
    databases.drop_abandoned(os.environ[databases.VARIABLE], f"test_{name}_")
    connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    atexit.register(connection.creation.destroy_test_db, name, verbosity=0)


def _freeze_today():
    """Make timezone.localdate() answer TODAY for this kernel (the lending desk's "today")."""
    from django.utils import timezone

    real = getattr(timezone.localdate, "real", timezone.localdate)

    def localdate(value=None, timezone=None):
        return TODAY if value is None else real(value, timezone)

    localdate.real = real
    timezone.localdate = localdate


def _create_users():
    from django.contrib.auth.models import User

    from .testing import create_staff

    for username, permissions in USERS.items():
        if permissions is None:
            User.objects.create_superuser(username, f"{username}@example.com", "pw")
        else:
            create_staff(User, username, *permissions, email=f"{username}@example.com")


def user(username):
    from django.contrib.auth.models import User

    return User.objects.get(username=username)


def client_for(username, **options):
    """A test client logged in as `username`, as a browser with a session cookie is."""
    from django.test import Client

    client = Client(**options)
    client.force_login(user(username))
    return client


def admin_request(username, data=None, path="/admin/", method="post"):
    """A request as the admin's views receive it: user, session and message storage attached."""
    from django.contrib.messages.storage.fallback import FallbackStorage
    from django.contrib.sessions.backends.db import SessionStore
    from django.test import RequestFactory

    request = getattr(RequestFactory(), method)(path, data or {})
    request.user = user(username)
    request.session = SessionStore()
    request._messages = FallbackStorage(request)
    return request


def show_source(obj):
    """Print the source of a function or class as the project has it now."""
    print(textwrap.dedent(inspect.getsource(obj)).rstrip())


def show_sql(queryset):
    """Print the SQL a queryset would run, laid out one clause per line."""
    import sqlparse

    print(sqlparse.format(str(queryset.query), reindent=True).strip())


@contextmanager
def counting_queries(show=True):
    """Count (and list) the SQL statements run inside the block, placeholders unfilled."""
    from django.db import connection

    statements = []
    began = not connection.get_autocommit()  # a transaction already open began before

    def record(execute, sql, params, many, context):
        # SQLite's BEGIN IMMEDIATE is a statement Django runs; psycopg sends PostgreSQL's
        # BEGIN itself, before the first statement once autocommit is off. Listed where each
        # reaches the database.
        nonlocal began
        if sql.startswith("BEGIN"):
            began = True
        elif connection.get_autocommit():
            began = False
        elif not began:
            statements.append("BEGIN")
            began = True
        statements.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        yield statements
    if show:
        print(f"{len(statements)} SQL queries:")
        for sql in statements:
            print("  " + (sql if len(sql) <= 90 else sql[:87] + "..."))


def messages_of(request_or_response):
    """(LEVEL, text) of the messages left for the user."""
    from django.contrib.messages import get_messages

    request = getattr(request_or_response, "wsgi_request", request_or_response)
    return [(m.level_tag.upper(), str(m)) for m in get_messages(request)]


def show_response(response):
    """Status, where it leads or what it holds, and the messages it carries."""
    print(f"{response.status_code} {type(response).__name__}")
    for header in ("Location", "Content-Type", "Content-Disposition"):
        if response.has_header(header):
            print(f"  {header}: {response[header]}")
    request = getattr(response, "wsgi_request", None)
    for level, text in messages_of(request) if request is not None else []:
        print(f"  message [{level}] {text}")


def show_rows(queryset, *fields):
    """A small table of `fields` for every row of `queryset`."""
    rows = [[str(value) for value in row] for row in queryset.values_list(*fields)]
    widths = [max(len(str(f)), *(len(r[i]) for r in rows)) for i, f in enumerate(fields)]
    print("  ".join(f.ljust(w) for f, w in zip(fields, widths)))
    for row in rows:
        print("  ".join(value.ljust(w) for value, w in zip(row, widths)))


MASKED = {
    # Values that change from run to run, or that are signed: what they are, not what they say.
    "csrfmiddlewaretoken": "<a fresh CSRF token>",
    "listing": "<the digest of the listed rows, signed>",
}


# What django.core.signing makes: a value, a colon, a URL-safe base64 signature.
SIGNED = re.compile(r"^.*:[A-Za-z0-9_-]{27,}$")


def show_form(fields):
    """The fields a form posts, with random and signed values masked."""
    for name, value in fields:
        if name in MASKED:
            shown = MASKED[name]
        elif SIGNED.match(str(value)):
            shown = "<a signed value>"
        else:
            shown = repr(value)
        print(f"  {name} = {shown}")


def staff_user(username, *permissions):
    """A staff user holding only `permissions` ("app_label.codename"), made once."""
    from django.contrib.auth.models import User

    from .testing import create_staff

    existing = User.objects.filter(username=username).first()
    return existing or create_staff(User, username, *permissions)


def lending_desk():
    """The lending desk every notebook starts from: five members, five books, five loans.

    Fixed names, addresses and dates (TODAY is 2025-06-02): Ada has two overdue books, Bob one
    overdue (renewed once already) and one returned, Cy one overdue but no address; Dora's
    name looks like a formula to a spreadsheet; Emile has borrowed nothing.
    """
    from lessons.lending.models import Book, Loan, Member

    members = {
        name: Member.objects.create(name=name, email=email, joined_on=joined_on)
        for name, email, joined_on in [
            ("Ada Lovelace", "ada@example.com", date(2024, 1, 15)),
            ("Bob Brown", "bob@example.com", date(2024, 3, 1)),
            ("Cy Young", "", date(2024, 9, 10)),
            ('=HYPERLINK("http://x","Dora")', "dora@example.com", date(2025, 1, 20)),
            ("Émile Zola", "emile@example.com", date(2025, 2, 2)),
        ]
    }
    for title, member, lent_on, due_on, returned_on, renewed_on in [
        ("Dune", "Ada Lovelace", date(2025, 5, 1), date(2025, 5, 15), None, None),
        ("Emma", "Ada Lovelace", date(2025, 5, 10), date(2025, 5, 24), None, None),
        ("Ulysses", "Bob Brown", date(2025, 4, 29), date(2025, 5, 27), None, date(2025, 5, 13)),
        ("Walden", "Bob Brown", date(2025, 4, 1), date(2025, 4, 15), date(2025, 4, 14), None),
        ("Middlemarch", "Cy Young", date(2025, 5, 1), date(2025, 5, 15), None, None),
    ]:
        Loan.objects.create(
            book=Book.objects.create(title=title), member=members[member], lent_on=lent_on,
            due_on=due_on, returned_on=returned_on, renewed_on=renewed_on,
            status=Loan.Status.RETURNED if returned_on else Loan.Status.LENT,
        )


def changelist_path(model_admin, query=""):
    """The changelist's URL on the model admin's own site, with an optional query string."""
    from django.urls import reverse

    opts = model_admin.opts
    url = reverse(f"{model_admin.admin_site.name}:{opts.app_label}_{opts.model_name}_changelist")
    return f"{url}?{query}" if query else url


def show_actions(model_admin, username="admin", query=""):
    """The dropdown `username` is offered on the changelist: each action's name and label
    (its first, blank option left out: its label changed in Django 6.1)."""
    request = admin_request(username, method="get", path=changelist_path(model_admin, query))
    choices = model_admin.get_action_choices(request)[1:]
    for name, label in choices:
        print(f"  {name:24} {label}")
    if not choices:
        print("  (no actions: the changelist shows no dropdown)")


def run_action(username, model_admin, action, selected, *, select_across=False, query="",
               queries=True, **extra):
    """POST the changelist's form as `username` through the whole stack (middleware, CSRF,
    sessions, messages), as the Run button does; list the SQL it ran when `queries`."""
    data = {
        "action": action, "index": "0", "select_across": "1" if select_across else "0",
        "_selected_action": [str(pk) for pk in selected], **extra,
    }
    client = client_for(username)  # logging in is not part of the request: not counted
    with counting_queries(show=queries):
        return client.post(changelist_path(model_admin, query), data)


def page_list(response, css_class):
    """The items of the page's <ul class="css_class">, as text."""
    import html

    match = re.search(rf'<ul class="{css_class}">(.*?)</ul>', response.content.decode(), re.S)
    items = re.findall(r"<li>(.*?)</li>", match.group(1), re.S) if match else []
    return [html.unescape(item) for item in items]


# The change form: since Django 6.1 an object's own page may carry an action bar too.


def change_path(model_admin, obj, query=""):
    """The change page's URL of `obj` on the model admin's own site, with an optional query."""
    from .testing import change_url

    return change_url(obj, query, model_admin.admin_site.name)


def change_form_choices(response):
    """The change page's action dropdown as [(name, label)], the blank choice left out; []
    when the page has no action bar (its context's action_form is None)."""
    from .testing import change_form_actions

    return list(change_form_actions(response).items())


def show_change_form_actions(model_admin, obj, username="admin", query=""):
    """The dropdown `username` is offered on the change page of `obj`, as the page has it."""
    response = client_for(username).get(change_path(model_admin, obj, query))
    if response.status_code != 200:
        print(f"  (the page answers {response.status_code})")
        return
    choices = change_form_choices(response)
    for name, label in choices:
        print(f"  {name:24} {label}")
    if not choices:
        print("  (no actions: the page shows no action bar)")


def press_run(client, page, action, **changes):
    """Choose `action` in the change page's dropdown and press Run, as a browser does: POST
    the page's form (every field as the page filled it in) to the page's own URL. `changes`
    replace fields (a list posts the name once per value) or add one, e.g. _save="Save"."""
    from .testing import CHANGE_FORM_ACTION, form_url, form_with_button, post_data

    form = form_with_button(page, "index")
    if form is None:
        raise ValueError("the page has no action bar: no Run button to press")
    data = post_data(form["fields"])
    data.update({CHANGE_FORM_ACTION: action, "index": "0", **changes})
    return client.post(form_url(page, form), data)


def call_change_view(model_admin, obj, username="admin", data=None):
    """Call the model admin's change_view() for `obj` directly, as its URL would: a GET, or a
    POST of `data`, by `username`, with a request from admin_request(). No middleware runs,
    and the model admin's site needs no URLs. Returns (request, response)."""
    opts = model_admin.opts
    site = model_admin.admin_site.name
    path = f"/{site}/{opts.app_label}/{opts.model_name}/{obj.pk}/change/"
    request = admin_request(username, data, path=path, method="get" if data is None else "post")
    # A browser's form carries a CSRF token; a request built by hand has none, and the test
    # client skips the check the same way.
    request._dont_enforce_csrf_checks = True
    return request, model_admin.change_view(request, str(obj.pk))


def quiet_refusals():
    """Keep Django's log of refused requests (a 400's or 403's warning, with a traceback
    under DEBUG) out of the cell's output: the cell shows the status code instead."""
    from .testing import refusals_unlogged

    return refusals_unlogged()


def show_excerpt(obj, first, last):
    """Print the lines of `obj`'s source from the first that contains `first` to the next
    that contains `last`, as the installed version has them."""
    lines = textwrap.dedent(inspect.getsource(obj)).splitlines()
    start = next(i for i, line in enumerate(lines) if first in line)
    end = next(i for i, line in enumerate(lines) if i >= start and last in line)
    print("\n".join(lines[start:end + 1]))


def show_warnings(caught):
    """Each warning caught (warnings.catch_warnings(record=True)) once, with how many times
    it came: its category and message, not the file and line it points at."""
    counts = {}
    for warning in caught:
        key = f"{warning.category.__name__}: {warning.message}"
        counts[key] = counts.get(key, 0) + 1
    for text, count in counts.items():
        print(f"  {count} x {text}")
    if not counts:
        print("  (no warning)")


FLOW = [
    # (box title, what happens there)
    ("Browser", "ticks rows, chooses an action, presses Run: POST to the changelist URL"),
    ("changelist_view", "checks permission, refuses an empty selection, builds the ChangeList"),
    ("response_action", "accepts only an action of get_action_choices(): the user's own"),
    ("the queryset", "changelist queryset, .filter(pk__in=_selected_action) unless select_across"),
    ("your action", "action(modeladmin, request, queryset)"),
]
OUTCOMES = [
    ("returns None", "redirect to the changelist; messages shown there"),
    ("returns a response", "sent as it is: a CSV download, a confirmation page"),
]


def flow_diagram():
    """The changelist's action request flow, drawn as SVG (no network, same bytes each run)."""
    from IPython.display import SVG

    width, box_w, box_h, gap = 760, 170, 46, 22
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="420" '
        'font-family="sans-serif" font-size="12">',
        '<defs><marker id="arrow" markerWidth="8" markerHeight="8" refX="7" refY="4" '
        'orient="auto"><path d="M0,0 L8,4 L0,8 z" fill="#417690"/></marker></defs>',
    ]
    for i, (title, text) in enumerate(FLOW):
        y = 10 + i * (box_h + gap)
        parts.append(
            f'<rect x="10" y="{y}" width="{box_w}" height="{box_h}" rx="6" fill="#79aec8" />'
            f'<text x="{10 + box_w // 2}" y="{y + 28}" text-anchor="middle" fill="white" '
            f'font-weight="bold">{title}</text>'
            f'<text x="{box_w + 30}" y="{y + 28}" fill="#333">{text}</text>'
        )
        if i:
            parts.append(
                f'<line x1="95" y1="{y - gap}" x2="95" y2="{y - 2}" stroke="#417690" '
                'stroke-width="2" marker-end="url(#arrow)"/>'
            )
    top = 10 + len(FLOW) * (box_h + gap)
    for j, (title, text) in enumerate(OUTCOMES):
        x = 10 + j * (width // 2)
        parts.append(
            f'<line x1="95" y1="{top - gap}" x2="{x + 85}" y2="{top - 2}" stroke="#417690" '
            'stroke-width="2" marker-end="url(#arrow)"/>'
            f'<rect x="{x}" y="{top}" width="{box_w}" height="{box_h}" rx="6" fill="#f5dd5d"/>'
            f'<text x="{x + box_w // 2}" y="{top + 28}" text-anchor="middle" '
            f'font-weight="bold">{title}</text>'
            f'<text x="{x}" y="{top + box_h + 18}" fill="#333">{text}</text>'
        )
    parts.append("</svg>")
    return SVG("".join(parts))


# "Now your own code": the same steps on the learner's exercise, on demand.


def mine_mode():
    """Whether this kernel runs the "Now your own code" sections (WORKBOOK_NOTEBOOK_MINE=1)."""
    return os.environ.get(MINE_VAR) == "1"


@dataclass
class Yours:
    """The learner's ModelAdmin for a "Now your own code" section, or the one line why not."""

    model_admin: object = None
    line: str = ""  # how to run the section, or what is missing; "" when it can run


def your_admin(number, *actions, model="Article", site="admin", location=None):
    """Your exercise's ModelAdmin for `model` on `site`, if it offers `actions`; outside
    --mine mode, or when it cannot run, the one line that says how to run it or what is missing.
    With `location` (an ActionLocation), the actions must be offered there: on the change
    form, say, rather than on the changelist.
    """
    exercise = metadata.find(str(number))
    if not mine_mode():
        return Yours(line=f"Run `workbook notebook {exercise.number} --mine` to step through "
                          f"your own {' and '.join(actions)} here.")
    return _yours(exercise, actions, model, site, location)


def _yours(exercise, actions, model, site, location=None):
    from django.apps import apps
    from django.contrib import admin

    from .apps import broken_admins

    if exercise.label in broken_admins:
        error = broken_admins[exercise.label].strip().splitlines()[-1]
        return Yours(line=f"your exercises/{exercise.folder}/admin.py does not import: {error}")
    model_class = apps.get_model(exercise.label, model)
    admin_site = next(s for s in admin.sites.all_sites if s.name == site)
    if not admin_site.is_registered(model_class):
        return Yours(line=f"your admin.py no longer registers {model} on the {site} site: "
                          f"keep its @admin.register({model}, ...)")
    model_admin = admin_site.get_model_admin(model_class)
    if location is not None:
        return Yours(model_admin, _missing_at(exercise, model_admin, actions, location))
    offered = model_admin.get_actions(admin_request("admin", method="get"))
    missing = [name for name in actions if name not in offered]
    line = what_is_missing(exercise, missing[0], model_admin) if missing else ""
    return Yours(model_admin, line)


def _missing_at(exercise, model_admin, actions, location):
    """One line: what keeps the first of `actions` off `location` for a superuser ("" when
    all are offered there)."""
    from django.utils.inspect import get_func_args

    admin_name = type(model_admin).__name__
    where = "the change form" if location.name == "CHANGE_FORM" else "the changelist"
    if "action_location" not in get_func_args(model_admin.get_actions):
        asked = _where_asked(exercise, "get_actions")
        return (f"your {admin_name}.get_actions() does not take action_location, so Django "
                f"6.1 offers no action on the change form: {asked}")
    request = admin_request("admin", method="get")
    offered = model_admin.get_actions(request, action_location=location)
    for name in actions:
        if name in offered:
            continue
        listed = name in [getattr(a, "__name__", a) for a in model_admin.actions or []]
        written = callable(getattr(type(model_admin), name, None))
        if listed and written:
            return (f"your {name} is not offered on {where}: which location does its "
                    f"@admin.action give? {_where_asked(exercise, name)}")
        if written:
            return (f"you wrote {name} but {admin_name}.actions does not list it: "
                    f"{_where_asked(exercise, name)}")
        return f"you have not written {name} yet: {_where_asked(exercise, name)}"
    return ""


def _where_asked(exercise, name):
    """"lesson 06, task 2": the task that asks for `name`, or only the lesson while the
    lesson has no file yet."""
    if not (metadata.ROOT / exercise.lesson).exists():
        return f"lesson {exercise.folder[:2]}"
    return f"lesson {exercise.folder[:2]}, task {task_of(exercise, name)}"


def ready(yours):
    """Whether a "Now your own code" cell can run; if not, print the one line that says why."""
    if yours.line:
        print(yours.line)
    return not yours.line


def what_is_missing(exercise, action, model_admin=None):
    """One line: the action the changelist does not offer, and the lesson task that asks."""
    where = f"lesson {exercise.folder[:2]}, task {task_of(exercise, action)}"
    if model_admin is not None and callable(getattr(type(model_admin), action, None)):
        admin_name = type(model_admin).__name__
        return f"you wrote {action} but {admin_name}.actions does not list it: {where}"
    return f"you have not written {action} yet: {where}"


def task_of(exercise, action):
    """The number of the lesson's "## Task N" section that asks for `action`: the first one
    that gives its label in the dropdown, else the first that names it, else 1."""
    text = (metadata.ROOT / exercise.lesson).read_text()
    parts = re.split(r"^## Task (\d+)\b.*$", text, flags=re.MULTILINE)
    sections = [(int(parts[i]), parts[i + 1]) for i in range(1, len(parts), 2)]
    named = rf"`{re.escape(action)}`"
    labelled = rf"{named}[^.]*?\b(?:labelled|dropdown)\b"
    for pattern in (labelled, named):
        for number, section in sections:
            if re.search(pattern, section):
                return number
    return 1


__all__ = [
    "TODAY", "USERS", "admin_request", "call_change_view", "change_form_choices", "change_path",
    "changelist_path", "client_for", "counting_queries", "flow_diagram", "lending_desk",
    "messages_of", "mine_mode", "page_list", "press_run", "quiet_refusals", "ready",
    "run_action", "setup", "show_actions", "show_change_form_actions", "show_excerpt",
    "show_form", "show_response", "show_rows", "show_source", "show_sql", "show_warnings",
    "staff_user", "user", "your_admin",
]
