"""Django inside a Jupyter notebook, and small helpers that show what the admin does.

Every notebook starts with

    from workbook.notebook import *
    setup()

which gives it a fresh in-memory database with the exercises' tables and four users. Output
is kept deterministic (fixed data, no timestamps, no tokens, no memory addresses), so nbval
can check each notebook against its committed outputs.
"""

import inspect
import os
import textwrap
from contextlib import contextmanager

USERS = {
    # username: permissions ("app_label.codename"); "admin" is a superuser.
    "admin": None,
    "editor": [
        "conditional.view_article", "conditional.change_article",
        "conditional.delete_article", "conditional.send_notifications",
    ],
    "writer": ["conditional.view_article", "conditional.change_article"],
    "reader": ["conditional.view_article"],
}


def setup(solutions=True):
    """Set Django up for this kernel: reference answers by default, your code with False."""
    # ipykernel 7 runs every cell inside a running asyncio event loop, and Django refuses
    # ORM calls made from such a context (SynchronousOnlyOperation) unless told that this
    # synchronous use is intended. A notebook is one user, one thread: it is.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    os.environ["WORKBOOK_SOLUTIONS"] = "1" if solutions else "0"
    os.environ["WORKBOOK_DB"] = ":memory:"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "workbook.settings")

    import django
    from django.core.management import call_command
    from django.test.utils import setup_test_environment

    django.setup()
    # Emails go to django.core.mail.outbox, and responses keep their template context.
    setup_test_environment()
    call_command("migrate", verbosity=0)
    _create_users()
    mode = "the reference answers (solutions/)" if solutions else "your code (exercises/)"
    print(f"Django is set up with {mode}, an in-memory database and users {', '.join(USERS)}.")


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

    def record(execute, sql, params, many, context):
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


def show_form(fields):
    """The fields a form posts, with the CSRF token's random value hidden."""
    for name, value in fields:
        shown = "<a fresh CSRF token>" if name == "csrfmiddlewaretoken" else value
        print(f"  {name} = {shown!r}")


FLOW = [
    # (box title, what happens there)
    ("Browser", "ticks rows, chooses an action, presses Run: POST to the changelist URL"),
    ("changelist_view", "checks view/change permission, builds the ChangeList (filters, search)"),
    ("response_action", "validates action against get_actions(); no selection: warning"),
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


__all__ = [
    "admin_request", "client_for", "counting_queries", "flow_diagram", "messages_of", "setup",
    "show_form", "show_response", "show_rows", "show_source", "show_sql", "user",
]
