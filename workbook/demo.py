"""A demo site to click through: `workbook serve [--solutions]`.

It migrates the local SQLite file (db.sqlite3, which git ignores), seeds every exercise with
the same realistic data each time (seeding again adds nothing), creates users whose
passwords it prints, and serves the admin on localhost. For local development only.
"""

import os
import random
import subprocess
import sys
from datetime import UTC, datetime, timedelta

from . import metadata

# username: (password, superuser?, what they may do on every exercise's models)
USERS = {
    "admin": ("admin", True, ()),
    "editor": ("editor", False, ("view", "change", "delete")),
    "writer": ("writer", False, ("view", "change")),
    "reader": ("reader", False, ("view",)),
}
TOPICS = ["Admin actions", "QuerySets", "Migrations", "Forms", "Testing", "Security",
          "Templates", "Signals", "Caching", "Deployment"]
LAUNCH = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)
# The worked example's lending desk (lessons/lending): members, some without a usable address.
MEMBERS = [("Ada Lovelace", "ada@example.com"), ("Charles Babbage", ""),
           ("Grace Hopper", "grace@example.com"), ("Alan Turing", "alan@example"),
           ("Katherine Johnson", "katherine@example.com"),
           ("Edsger Dijkstra", "edsger@example.com")]
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
        if User.objects.filter(username=username).exists():
            continue
        user = User(username=username, email=f"{username}@example.com", is_staff=True,
                    is_superuser=superuser)
        user.set_password(password)
        user.save()
        codenames = [f"{verb}_{model._meta.model_name}" for verb in verbs
                     for model in _exercise_models(apps)]
        if username == "editor":
            codenames += ["send_notifications", "send_reminders"]
        user.user_permissions.set(
            Permission.objects.filter(
                content_type__app_label__in=_app_labels(),
                codename__in=codenames,
            )
        )
    authors = list(User.objects.filter(username__startswith="author").order_by("pk"))
    if not authors:
        # Every third author has no email address and one an invalid one: exercise 04
        # skips and counts them.
        authors = User.objects.bulk_create(
            User(username=f"author{i:02}", email=_demo_address(i)) for i in range(1, 13)
        )
    rng = random.Random(2026)
    for label in ("basic_action", "export", "confirmation", "conditional", "global"):
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
    _seed_api_keys(apps)
    _seed_lending(apps)


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


def prepare(solutions):
    """Migrate and seed db.sqlite3 (or $WORKBOOK_DB) in this process."""
    os.environ["WORKBOOK_SOLUTIONS"] = "1" if solutions else "0"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "workbook.settings")
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    seed()


def serve(solutions=False, port=8000):
    """Prepare the demo database, say how to log in, then run Django's development server."""
    prepare(solutions)
    code = "the reference answers (solutions/)" if solutions else "your code (exercises/)"
    print(f"Demo admin with {code}: http://127.0.0.1:{port}/admin/")
    print("Exercise 05 has its own admin site: "
          f"http://127.0.0.1:{port}/{metadata.find('5').label}/admin/")
    print(f"The lessons' lending desk has one too: http://127.0.0.1:{port}/lending/desk/")
    print("Users (username / password), for local development only: never reuse these:")
    for username, (password, superuser, verbs) in USERS.items():
        role = "superuser" if superuser else "staff who may " + ", ".join(verbs)
        if username == "editor":
            role += ", and send notifications (04) and overdue reminders (lending)"
        print(f"  {username} / {password}    {role}")
    sys.stdout.flush()
    manage = str(metadata.ROOT / "manage.py")
    return subprocess.call(
        [sys.executable, manage, "runserver", f"127.0.0.1:{port}"], env=dict(os.environ)
    )
