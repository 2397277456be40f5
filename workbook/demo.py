"""A demo site to click through: `workbook serve [--solutions]`.

It migrates the local SQLite file (db.sqlite3, which git ignores), or the database of
--database-url (or $DATABASE_URL), seeds every exercise with the same realistic data each
time (seeding again adds nothing), creates users whose passwords it prints, and serves the
admin on localhost. For local development only.
"""

import errno
import os
import random
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

from . import databases, metadata

# username: (password, superuser?, what they may do on every exercise's models)
USERS = {
    "admin": ("admin", True, ()),
    "editor": ("editor", False, ("view", "change", "delete")),
    "writer": ("writer", False, ("view", "change")),
    "reader": ("reader", False, ("view",)),
}
# What a user may do beyond those verbs, as (app label, codename): the editor sends
# notifications (04) and overdue reminders (lending), adds exercise 06's articles, which
# its change page's "Duplicate as draft" needs, refunds orders (07) and sees the task queue
# a big refund goes to. The writer may change orders but not refund them: 07's action is
# not offered to them.
EXTRA_PERMISSIONS = {
    "editor": [("conditional", "send_notifications"), ("lending", "send_reminders"),
               ("change_form", "add_article"), ("refund_desk", "refund_order"),
               ("django_tasks_database", "view_dbtaskresult")],
}
TOPICS = ["Admin actions", "QuerySets", "Migrations", "Forms", "Testing", "Security",
          "Templates", "Signals", "Caching", "Deployment"]
LAUNCH = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)
# The worked example's lending desk (lessons/lending): members, some without a usable address.
MEMBERS = [("Ada Lovelace", "ada@example.com"), ("Charles Babbage", ""),
           ("Grace Hopper", "grace@example.com"), ("Alan Turing", "alan@example"),
           ("Katherine Johnson", "katherine@example.com"),
           ("Edsger Dijkstra", "edsger@example.com")]
# Exercise 06's tags, a few to each article.
TAGS = ["beginners", "deep dive", "how-to", "news", "opinion", "security"]
# Exercise 07's customers: every first name with every last name.
FIRST_NAMES = ["Amara", "Bruno", "Chen", "Dana", "Elif", "Femi", "Greta", "Hugo", "Ines", "Jonas"]
LAST_NAMES = ["Okafor", "Silva", "Wang", "Novak", "Yilmaz", "Adeyemi", "Berg", "Laurent"]
# 07's orders: enough that "select all" goes past REFUND_DESK_INLINE_LIMIT (500), so a
# refund is queued for the worker; mostly paid, some shipped or already refunded (skipped).
ORDERS = 1200
BOOKS = [("Middlemarch", "9780141439549"), ("Persuasion", "9780141439686"),
         ("Bleak House", "9780141439723"), ("Emma", "9780141439587"),
         ("North and South", "9780140434248"), ("Cranford", "9780140436679")]


def seed():
    """Create the users and every exercise's demo rows, unless they are already there."""
    from django.apps import apps
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission

    User = get_user_model()
    for username, (password, superuser, verbs) in USERS.items():
        user = User.objects.filter(username=username).first()
        if user is None:
            user = User(username=username, email=f"{username}@example.com", is_staff=True,
                        is_superuser=superuser)
            user.set_password(password)
            user.save()
        codenames = [f"{verb}_{model._meta.model_name}" for verb in verbs
                     for model in _exercise_models(apps)]
        permissions = Permission.objects.filter(
            content_type__app_label__in=_app_labels(), codename__in=codenames
        )
        for label, codename in EXTRA_PERMISSIONS.get(username, []):
            permissions |= Permission.objects.filter(
                content_type__app_label=label, codename=codename
            )
        # Added, never taken away: a demo database made before an exercise existed gets its
        # permissions on the next serve, and a second seed adds nothing.
        user.user_permissions.add(*permissions)
    authors = list(User.objects.filter(username__startswith="author").order_by("pk"))
    if not authors:
        # Every third author has no email address and one an invalid one: exercise 04
        # skips and counts them.
        authors = User.objects.bulk_create(
            User(username=f"author{i:02}", email=_demo_address(i)) for i in range(1, 13)
        )
    rng = random.Random(2026)
    for label in ("basic_action", "export", "confirmation", "conditional", "global",
                  "change_form"):
        Article = apps.get_model(label, "Article")
        if Article.objects.exists():
            continue
        extra = {}
        if label == "global":
            Category = apps.get_model("global", "Category")
            categories = [Category.objects.get_or_create(name=name)[0] for name in TOPICS[:6]]
        articles = []
        for i in range(300):
            published = rng.random() < 0.6
            if label == "global":
                extra = {"category": categories[i % len(categories)] if i % 7 else None}
            articles.append(Article(
                title=f"{TOPICS[i % len(TOPICS)]}, part {i // len(TOPICS) + 1}",
                status="published" if published else "draft",
                pub_date=LAUNCH + timedelta(days=i) if published else None,
                author=authors[i % len(authors)],
                **extra,
            ))
        articles = Article.objects.bulk_create(articles)
        if label == "confirmation":
            _seed_comments_and_slots(apps, articles, rng)
        if label == "change_form":
            _seed_tags(apps, articles)
    _seed_api_keys(apps)
    _seed_lending(apps)
    _seed_orders(apps)
    _seed_parameters(apps, rng)


def _seed_parameters(apps, rng):
    """Exercise 08's categories and articles: some published over a year before today, for
    its "Archive old articles" button."""
    Category = apps.get_model("parameters", "Category")
    Article = apps.get_model("parameters", "Article")
    if Article.objects.exists():
        return
    categories = Category.objects.bulk_create(Category(name=name) for name in TOPICS[:6])
    now = datetime.now(UTC)  # from today back: some recent, some over a year old, any year
    articles = []
    for i in range(300):
        published = rng.random() < 0.6
        articles.append(Article(
            title=f"{TOPICS[i % len(TOPICS)]}, part {i // len(TOPICS) + 1}",
            status="published" if published else "draft",
            pub_date=now - timedelta(days=3 * i) if published else None,
            category=categories[i % len(categories)] if i % 5 else None,
        ))
    Article.objects.bulk_create(articles)


def _demo_address(i):
    if i % 3 == 0:
        return ""
    return "author05(at)example.com" if i == 5 else f"author{i:02}@example.com"


def _app_labels():
    """The apps whose models the demo users may use: every exercise, and the worked example."""
    return {exercise.label for exercise in metadata.exercises()} | {"lending"}


def _exercise_models(apps):
    labels = _app_labels()
    return [model for model in apps.get_models() if model._meta.app_label in labels]


def _seed_comments_and_slots(apps, articles, rng):
    Comment = apps.get_model("confirmation", "Comment")
    FeaturedSlot = apps.get_model("confirmation", "FeaturedSlot")
    Comment.objects.bulk_create(
        Comment(article=article, name=f"Reader {n}", body="Thanks for this!")
        for article in articles
        for n in range(rng.randint(0, 4))
    )
    for name, article in zip(["Home page hero", "Sidebar pick"], articles[:2]):
        FeaturedSlot.objects.get_or_create(name=name, defaults={"article": article})


def _seed_tags(apps, articles):
    """Exercise 06's tags: most articles have one or two, every fifth none (a copy made with
    "Duplicate as draft" shows whether the tags came along)."""
    Tag = apps.get_model("change_form", "Tag")
    tags = [Tag.objects.get_or_create(name=name)[0] for name in TAGS]
    Tagging = apps.get_model("change_form", "Article").tags.through
    Tagging.objects.bulk_create(
        Tagging(article_id=article.pk, tag_id=tag.pk)
        for i, article in enumerate(articles)
        if i % 5
        for tag in [tags[i % len(tags)], *([tags[(i + 3) % len(tags)]] if i % 3 == 0 else [])]
    )


def _seed_api_keys(apps):
    ApiKey = apps.get_model("global", "ApiKey")
    for i, partner in enumerate(["Acme", "Globex", "Initech"], start=1):
        ApiKey.objects.get_or_create(name=partner, defaults={"key": f"demo-key-{i:04}-not-secret"})


def _seed_lending(apps):
    """Members, books and loans, some overdue and some returned, dated from today."""
    Member = apps.get_model("lending", "Member")
    Book = apps.get_model("lending", "Book")
    Loan = apps.get_model("lending", "Loan")
    if Member.objects.exists():
        return
    members = Member.objects.bulk_create(
        Member(name=name, email=email, joined_on=LAUNCH.date() + timedelta(days=30 * i))
        for i, (name, email) in enumerate(MEMBERS)
    )
    books = Book.objects.bulk_create(Book(title=title, isbn=isbn) for title, isbn in BOOKS)
    today = datetime.now(UTC).date()
    loans = []
    # Lent 1 to 47 days ago for three weeks, so the older half is overdue; every fourth loan
    # is back. The last member borrows nothing, so can be anonymised.
    for i in range(24):
        lent_on = today - timedelta(days=2 * i + 1)
        returned = i % 4 == 3
        loans.append(Loan(
            book=books[i % len(books)], member=members[i % 5], lent_on=lent_on,
            due_on=lent_on + timedelta(days=21), returned_on=today if returned else None,
            status="returned" if returned else "lent",
        ))
    Loan.objects.bulk_create(loans)


def _seed_orders(apps):
    """Exercise 07's customers and orders: 70 % paid, 20 % shipped, 10 % already refunded."""
    Customer = apps.get_model("refund_desk", "Customer")
    Order = apps.get_model("refund_desk", "Order")
    if Order.objects.exists():
        return
    customers = Customer.objects.bulk_create(
        Customer(name=f"{first} {last}", email=f"{first}.{last}@example.com".lower())
        for last in LAST_NAMES for first in FIRST_NAMES
    )
    rng = random.Random(7)
    orders = []
    for i in range(1, ORDERS + 1):
        status = rng.choices(["paid", "shipped", "refunded"], [7, 2, 1])[0]
        refunded = status == "refunded"
        orders.append(Order(
            number=f"RD-{i:05}", customer=customers[i % len(customers)],
            total=f"{rng.randint(500, 30000) / 100:.2f}", status=status,
            refunded_at=LAUNCH + timedelta(hours=i) if refunded else None,
            refund_reason=rng.choice(["damaged", "late", "wrong_item"]) if refunded else "",
        ))
    Order.objects.bulk_create(orders)


class ServeError(Exception):
    """The demo cannot start: said in one line (cli.py makes it "workbook: ..." and exit 2)."""


def prepare(solutions):
    """Migrate and seed db.sqlite3 (or $WORKBOOK_DB, or $DATABASE_URL) in this process."""
    os.environ["WORKBOOK_SOLUTIONS"] = "1" if solutions else "0"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "workbook.settings")
    import django
    from django.conf import settings
    from django.core.management import call_command
    from django.db import DatabaseError, connection

    django.setup()
    _refuse_failing_checks()
    path = str(settings.DATABASES["default"]["NAME"])
    if connection.vendor == "sqlite":
        _owner_only(path)
    try:
        call_command("migrate", verbosity=0)
        seed()
    except DatabaseError as error:
        raise ServeError(_database_advice(path, error)) from None
    finally:
        connection.close()


def _refuse_failing_checks():
    """runserver would print a SystemCheckError traceback and serve nothing until the file
    is fixed: say it in a line per error instead, before anything is started or written."""
    from django.core import checks

    # databases=[]: the code's checks only. With every database, a JSONField's check (07's
    # task queue has one) connects first, and a corrupt file would fail here, in a traceback.
    errors = [m for m in checks.run_checks(databases=[])
              if m.is_serious() and not m.is_silenced()]
    if errors:
        lines = [f"  {m.id} {m.obj}: {m.msg}" for m in errors]
        raise ServeError(
            "the admin fails Django's system checks, so the server cannot start; fix these "
            f"(`{metadata.runnable('pytest exercises/NN')}` says more), then run "
            f"{metadata.runnable('workbook serve')} again:\n"
            + "\n".join(lines)
        )


def _owner_only(path):
    """Create the database file readable by its owner only (it holds password hashes), or
    make an existing one so. SQLite gives its -wal and -shm files the same mode."""
    if path == ":memory:" or path.startswith("file:"):
        return
    try:
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        os.chmod(path, 0o600)
    except OSError as error:
        raise ServeError(
            f"cannot create the demo database {path}: {error.strerror}"
        ) from None


def _database_advice(path, error):
    from django.db import connection

    message = str(error)
    if connection.vendor != "sqlite":
        url = databases.shown(os.environ.get(databases.VARIABLE, ""))
        return (f"the demo database {url} cannot be used ({message.strip()}): may its role "
                "create tables in it? The demo needs a database of its own")
    if "not a database" in message or "malformed" in message:
        return (f"{path} is not a SQLite database: delete it and run "
                f"{metadata.runnable('workbook serve')} again; it holds only demo data")
    return (f"the demo database {path} cannot be used ({message}): if no other workbook "
            f"serve is running, delete it and run {metadata.runnable('workbook serve')} again; "
            "it holds only demo data")


def check_port(port):
    """Refuse a port runserver could not listen on, before anything starts. (It binds as
    runserver does, with SO_REUSEADDR: a port left in TIME_WAIT is free.)"""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise ServeError(f"port {port} is already in use: stop what uses it, or "
                                 "choose another with --port") from None
            raise ServeError(f"cannot listen on port {port} ({error.strerror}): choose "
                             "another with --port, e.g. 8001") from None


# The signals that stop `workbook serve`, and the one each sends on to the server.
STOPPING = {signal.SIGINT: signal.SIGINT, signal.SIGTERM: signal.SIGTERM,
            signal.SIGHUP: signal.SIGTERM}


class _Stop(Exception):
    def __init__(self, signum):
        self.signum = signum


def serve(solutions=False, port=8000):
    """Prepare the demo database, say how to log in, then run Django's development server
    and, beside it, the task worker that runs queued work (07's big refunds)."""
    check_port(port)
    prepare(solutions)
    code = "the reference answers (solutions/)" if solutions else "your code (exercises/)"
    url = os.environ.get(databases.VARIABLE)
    on = databases.shown(url) if url else os.environ.get("WORKBOOK_DB", "db.sqlite3")
    print(f"Demo admin with {code}, on {on}: http://127.0.0.1:{port}/admin/")
    print("Exercise 05 has its own admin site: "
          f"http://127.0.0.1:{port}/{metadata.find('5').label}/admin/")
    print(f"The lessons' lending desk has one too: http://127.0.0.1:{port}/lending/desk/")
    from django.conf import settings

    print("A task worker (django-tasks-db's db_worker) runs beside the server: a refund of "
          f"more than {settings.REFUND_DESK_INLINE_LIMIT} orders (07) is queued and done by it.")
    print(f"Its queue: http://127.0.0.1:{port}/admin/django_tasks_database/dbtaskresult/")
    print("Users (username / password), for local development only: never reuse these:")
    for username, (password, superuser, verbs) in USERS.items():
        role = "superuser" if superuser else "staff who may " + ", ".join(verbs)
        if username == "editor":
            role += (", and send notifications (04), overdue reminders (lending), add "
                     "articles (06, to duplicate them) and refund orders (07)")
        print(f"  {username} / {password}    {role}")
    sys.stdout.flush()
    manage = str(metadata.ROOT / "manage.py")
    return run_server(
        [sys.executable, manage, "runserver", f"127.0.0.1:{port}"],
        # --reload, as runserver: a saved admin.py is the code the next queued task runs.
        # The id names the port, so that a test can find this worker among processes.
        worker=[sys.executable, manage, "db_worker", "--reload",
                "--worker-id", f"{WORKER_ID}-{port}"],
    )


WORKER_ID = "workbook-serve"


def run_server(command, worker=None):
    """Run runserver (and WORKER, a command, beside it) as children, and stop them with this
    process, whatever stops this one.

    runserver keeps its autoreloader (a learner's saved admin.py shows on the next click),
    so it is two processes: the reloader and, under it, the server; the worker too. Each
    child runs in a process group of its own, and SIGINT (Ctrl-C), SIGTERM or SIGHUP (the
    terminal closed, or `kill PID` of this process) is sent on to every group, then this
    process waits for them; what has not stopped after 10 s is killed. Without this, `kill
    PID` left the server serving the admin (admin / admin) on the port. When the server
    ends by itself, the worker is stopped too; a worker that ends is said in one line.
    """
    worker_process = None
    started = []
    pending = []

    def on_signal(signum, frame):
        if not started:
            pending.append(signum)  # seen while the children start: stop them once they have
        else:
            raise _Stop(signum)

    previous = {signum: signal.signal(signum, on_signal) for signum in STOPPING}
    children = []
    try:
        server = subprocess.Popen(command, env=dict(os.environ), process_group=0)
        children.append(server)
        if worker:
            worker_process = subprocess.Popen(worker, env=dict(os.environ), process_group=0)
            children.append(worker_process)
        started.append(True)
        if pending:
            raise _Stop(pending[0])
        said = False
        while server.poll() is None:
            if worker_process and worker_process.poll() is not None and not said:
                print(f"workbook: the task worker stopped (exit status "
                      f"{worker_process.returncode}): queued work waits until you restart "
                      f"{metadata.runnable('workbook serve')}", file=sys.stderr, flush=True)
                said = True
            time.sleep(0.2)
        return server.returncode
    except _Stop as stop:
        for signum in STOPPING:
            signal.signal(signum, signal.SIG_IGN)  # a second Ctrl-C does not cut this short
        _stop_groups(children, STOPPING[stop.signum])
        return 0 if stop.signum == signal.SIGINT else 128 + stop.signum
    finally:
        _stop_groups([child for child in children if child.poll() is None], signal.SIGTERM)
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _stop_groups(children, signum, timeout=10):
    """Send SIGNUM to each child's process group and wait until none of them is left; what
    is still there after TIMEOUT seconds gets SIGKILL."""
    deadline = time.monotonic() + timeout
    groups = [child for child in children if _signal_group(child, signum)]
    # A zombie that nobody reaps stays in its group: two more seconds after SIGKILL, then
    # it is not this process's to wait for.
    while groups and time.monotonic() < deadline + 2:
        for child in groups:
            if time.monotonic() > deadline:
                _signal_group(child, signal.SIGKILL)
        # A group whose leader has ended and which has no member left is gone.
        groups = [child for child in groups
                  if child.poll() is None or _signal_group(child, 0)]
        time.sleep(0.05)
    for child in children:
        if child.poll() is None:
            child.kill()
        child.wait()


def _signal_group(child, signum):
    """Send SIGNUM to CHILD's process group: False if the group is gone."""
    try:
        os.killpg(child.pid, signum)
        return True
    except ProcessLookupError:
        return False
