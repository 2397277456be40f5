"""Graded tests for exercise 07: clerks refund orders through the admin, as a support team does.

The first POST comes from the changelist's action form; the second is the refund page's own
form, read from the page and submitted as a browser would. The queued path runs the real
queue: the task is stored by django-tasks-db and one pass of its worker, `db_worker`, runs it.
Run them with:

    pytest exercises/07_refund_desk
"""

import re
import signal
import threading
import tracemalloc
from datetime import timedelta
from decimal import Decimal
from functools import partial

import pytest
from django.apps import apps
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core import mail
from django.core.management import call_command
from django.db import DatabaseError, connection
from django.tasks.signals import task_started
from django.test import Client, TestCase
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from workbook.testing import (
    Clerk,
    CountingEmailBackend,
    WorkerProcess,
    RecordingEmailBackend,
    changelist_url,
    expect,
    expect_action_offered,
    expect_message,
    expect_well_formed,
    form_url,
    form_with_button,
    login_staff,
    messages_of,
    offered_actions,
    parse_page,
    post_action,
    post_data,
    query_parameters_limited,
    refusals_unlogged,
    submit_form,
    needs_row_locks,
    lock_waiters,
    row_held,
    wait_for_lock_waiters,
    wait_until_gone,
)

Customer = apps.get_model("refund_desk", "Customer")
Order = apps.get_model("refund_desk", "Order")

ACTION = "mark_refunded"
LABEL = "Mark selected orders as refunded"
TEMPLATE = "admin/refund_desk/order/mark_refunded.html"
TITLE = "Refund these orders?"
GONE = "Nothing was refunded: none of the selected orders exists any more."
CHANGED = (
    "Nothing was refunded: the selection no longer matches the page you confirmed. "
    "Check the orders below and confirm again."
)
PAID = "status__exact=paid"
# What db_worker takes over while it runs.
STOP_SIGNALS = [signal.SIGINT, signal.SIGTERM, *[signal.SIGQUIT] * hasattr(signal, "SIGQUIT")]

pytestmark = pytest.mark.django_db


# Orders, pages and the refund form


def make_orders(count, status="paid", prefix="A", customer=None):
    customers = [customer] if customer else Customer.objects.bulk_create(
        Customer(name=f"Customer {prefix}{i}", email=f"{prefix.lower()}{i}@example.com")
        for i in range(1, count + 1)
    )
    now = timezone.now()
    return Order.objects.bulk_create(
        Order(
            number=f"{prefix}-{i:05d}",
            customer=customers[(i - 1) % len(customers)],
            total=Decimal("10.00") + i,
            status=status,
            **({"refunded_at": now - timedelta(days=3), "refund_reason": "late"}
               if status == "refunded" else {}),
        )
        for i in range(1, count + 1)
    )


def ask(client, orders, **options):
    """The first POST: choose the action on the changelist and press Run."""
    return post_action(client, Order, ACTION, [o.pk for o in orders], follow=False, **options)


def refund_page(client, orders, **options):
    """The refund page for `orders`, after checking it is one with a form to submit."""
    __tracebackhide__ = True
    response = ask(client, orders, **options)
    expect(
        response.status_code == 200,
        f"Running '{ACTION}' answered {response.status_code}"
        + (f" (a redirect to {response.url})" if response.status_code == 302 else "")
        + ", not 200 with the refund page. Without 'apply' in request.POST, the action "
        f"returns TemplateResponse(request, {TEMPLATE!r}, context) and changes nothing.",
    )
    expect(
        form_with_button(response, "apply") is not None,
        "The refund page has no form with a submit button named 'apply'. In your template: "
        "<form method=\"post\"> ... <input type=\"submit\" name=\"apply\" ...>.",
    )
    return response


def fill(page, **fields):
    """The page's form as a browser would post it, with `fields` typed in."""
    form = form_with_button(page, "apply")
    data = post_data(form["fields"])
    names = set(data)
    for name, value in fields.items():
        expect(
            name in names,
            f"The refund form has no field named {name!r} (it has {sorted(names)}): the "
            "lesson's task 1 names the form's fields, `reason` and `note`.",
            task=1,
        )
        data[name] = [value]
    data["apply"] = dict(form["buttons"])["apply"]
    return data


def apply(client, page, follow=True, commit=True, **fields):
    """Fill in the refund page's form and press its button. The test's own transaction
    never commits: with `commit`, what waits for a commit (transaction.on_commit) runs as
    the request ends, as it would if the request had committed."""
    __tracebackhide__ = True
    data = fill(page, **{"reason": "damaged", **fields})
    url = form_url(page, form_with_button(page, "apply"))
    if not commit:
        return client.post(url, data, follow=follow)
    with TestCase.captureOnCommitCallbacks(execute=True):
        return client.post(url, data, follow=follow)


def refund(client, orders, follow=True, **fields):
    """The whole refund, as a clerk does it: Run, fill in the page, press its button."""
    __tracebackhide__ = True
    return apply(client, refund_page(client, orders), follow=follow, **fields)


def statuses(orders):
    found = dict(Order.objects.filter(pk__in=[o.pk for o in orders]).values_list("pk", "status"))
    return [found.get(o.pk) for o in orders]


def refunded(orders):
    return sum(status == "refunded" for status in statuses(orders))


def successes(response):
    return [text for level, text in messages_of(response) if level == "success"]


def refund_entries():
    content_type = ContentType.objects.get_for_model(Order)
    return LogEntry.objects.filter(content_type=content_type, action_flag=CHANGE)


def refuse_the_history(failed, execute, sql, params, many, context):
    """A database that refuses to write the admin's history (each refusal noted in FAILED)."""
    if sql.startswith('INSERT INTO "django_admin_log"'):
        failed.append(sql)
        raise DatabaseError("disk full")
    return execute(sql, params, many, context)


def expect_nothing_refunded(orders, response, what):
    __tracebackhide__ = True
    expect(
        refunded(orders) == 0,
        f"{what}, yet {refunded(orders)} of {len(orders)} orders were refunded. Refund only "
        "after a valid form, and only the rows the page listed.",
    )
    expect(not refund_entries().exists(), f"{what}, yet history entries were written.")
    expect(not mail.outbox, f"{what}, yet {len(mail.outbox)} emails were sent.")
    expect(not successes(response),
           f"{what}; nothing was refunded, yet the user was told {successes(response)}.")


def page_text(response):
    """The page's text as a reader sees it: tags removed, whitespace collapsed."""
    return " ".join(re.sub(r"<[^>]+>", " ", response.content.decode()).split())


def numbers_on(response):
    return set(re.findall(r"\b[A-Z]-\d{5}\b", page_text(response)))


def run_the_worker():
    """One pass of django-tasks-db's worker over the queue, as `db_worker` runs it. The worker
    takes over Ctrl-C (and SIGTERM): the test run gets them back afterwards."""
    handlers = {number: signal.getsignal(number) for number in STOP_SIGNALS}
    try:
        call_command("db_worker", "--batch", "--no-startup-delay", "--no-reload", verbosity=0)
    finally:
        for number, handler in handlers.items():
            signal.signal(number, handler)


def clerk(django_user_model, *codenames, username="clerk"):
    client = Client()
    login_staff(client, django_user_model, *[f"refund_desk.{c}" for c in codenames],
                username=username, email=f"{username}@example.com")
    return client


# Task 1: Ask for a reason


@pytest.mark.task(1, points=1)
def test_mark_refunded_is_offered_in_the_dropdown(admin_client):
    expect_action_offered(admin_client, Order, ACTION, LABEL)


@pytest.mark.task(1, points=2)
def test_only_clerks_who_may_refund_are_offered_it(admin_client, django_user_model):
    expect_action_offered(admin_client, Order, ACTION)
    changer = clerk(django_user_model, "view_order", "change_order", username="changer")
    refunder = clerk(django_user_model, "view_order", "refund_order", username="refunder")
    orders = make_orders(2)

    expect(
        ACTION in offered_actions(refunder, Order),
        "A clerk with view_order and refund_order is not offered the action. Declare "
        "permissions=['refund'] and write has_refund_permission(request), checking "
        "'refund_desk.refund_order'.",
    )
    expect(
        ACTION not in offered_actions(changer, Order),
        "A clerk who may change orders but not refund them is offered the action: "
        "refunding needs the refund_order permission, not change_order.",
    )
    page = refund_page(admin_client, orders)
    with refusals_unlogged():
        forged = changer.post(page.wsgi_request.get_full_path(), fill(page, reason="damaged"))
    expect(
        refunded(orders) == 0 and not mail.outbox,
        f"A clerk without refund_order posted the refund form by hand (answer "
        f"{forged.status_code}) and {refunded(orders)} orders were refunded. Only Django's "
        "permission check, permissions=['refund'] on the action, stops a forged POST.",
    )


@pytest.mark.task(1, points=2)
def test_the_first_post_shows_the_refund_page_and_changes_nothing(admin_client):
    expect_action_offered(admin_client, Order, ACTION)
    orders = make_orders(2)

    response = refund_page(admin_client, orders, query=PAID)

    templates = [t.name for t in response.templates]
    expect(
        TEMPLATE in templates and "admin/base_site.html" in templates,
        f"The refund page was rendered from {templates[:3]}; it should be {TEMPLATE}, which "
        '{% extends "admin/base_site.html" %} so it looks like the rest of the admin.',
    )
    expect(refunded(orders) == 0 and not mail.outbox and not refund_entries().exists(),
           "The first POST refunded orders: it must only ask.")
    expect(not messages_of(response),
           f"The first POST should only show the page, without a message: it shows "
           f"{messages_of(response)}.")
    expect('class="errorlist' not in response.content.decode(),
           "The first page already shows form errors: the clerk has typed nothing yet. Bind "
           "the form to request.POST only when 'apply' was pressed.")
    body = re.search(r'<body[^>]*class="([^"]*)"', response.content.decode())
    expect(body and {"app-refund_desk", "model-order"} <= set(body[1].split()),
           "The page's <body> lacks the classes app-refund_desk and model-order (block "
           "bodyclass, keeping {{ block.super }}): the admin's CSS and scripts rely on them.")
    expect_well_formed(response, "the refund page")
    expect(
        response.context.get("title") == TITLE,
        f"The page's title is {response.context.get('title')!r}; the lesson's contract says "
        f"{TITLE!r} (the 'title' context variable, which base_site.html shows).",
    )
    back = changelist_url(Order, PAID)
    crumbs = re.search(r'<[a-z]+ class="breadcrumbs">(.*?)</(ol|div)>', response.content.decode(),
                       re.S)
    links = re.findall(r'href="([^"]+)"', crumbs[1]) if crumbs else []
    expected = [reverse("admin:index"), reverse("admin:app_list", args=["refund_desk"]), back]
    expect(
        links == expected and TITLE in (crumbs[1] if crumbs else "")
        and "Orders" in (crumbs[1] if crumbs else ""),
        f"The breadcrumbs should read Home › 07 · Refund desk › Orders › the title, linking "
        f"{expected}; found {links}. "
        "Django's admin/delete_selected_confirmation.html has a breadcrumbs block to adapt.",
    )
    expect(
        parse_page(response).links.count(back) >= 2,
        f"Besides the breadcrumbs, offer a way out beside the button: a link to {back}.",
    )


@pytest.mark.task(1, points=2)
def test_the_form_asks_a_reason_and_posts_the_selection_back(admin_client):
    expect_action_offered(admin_client, Order, ACTION)
    orders = make_orders(3)

    page = refund_page(admin_client, orders[:2])

    fields = form_with_button(page, "apply")["fields"]
    names = [name for name, _ in fields]
    selected = sorted(value for name, value in fields if name == "_selected_action")
    expected = sorted(str(o.pk) for o in orders[:2])
    options = set(re.findall(r'<option value="([^"]*)"', page.content.decode()))
    reasons = {value for value, _ in Order.Reason.choices}
    problems = [
        message
        for ok, message in [
            ("csrfmiddlewaretoken" in names, "the CSRF token ({% csrf_token %})"),
            (("action", ACTION) in fields, f"a hidden 'action' with the value {ACTION!r}"),
            (selected == expected, f"one hidden '_selected_action' per order: {expected}, "
                                   f"found {selected}"),
            ("select_across" in names, "a hidden 'select_across' carrying the user's choice"),
            ("index" in names, "a hidden 'index'"),
            ("reason" in names and reasons <= options and options - {""} <= reasons,
             f"a select named 'reason' offering exactly the reasons {sorted(reasons)}"),
            ("note" in names, "a field named 'note'"),
        ]
        if not ok
    ]
    expect(not problems, "The refund form lacks:\n  " + "\n  ".join(problems))


@pytest.mark.task(1, points=1)
@pytest.mark.parametrize("fields, what", [
    ({"reason": ""}, "no reason"),
    ({"reason": "bored"}, "a reason that is not on the list"),
    ({"note": "x" * 501}, "a note of 501 characters"),
])
def test_invalid_input_shows_the_page_again_with_its_errors(admin_client, fields, what):
    expect_action_offered(admin_client, Order, ACTION)
    orders = make_orders(2)
    page = refund_page(admin_client, orders)

    response = apply(admin_client, page, follow=False, **fields)

    expect_nothing_refunded(orders, response, f"The form was sent with {what}")
    expect(
        response.status_code == 200 and TEMPLATE in [t.name for t in response.templates]
        and form_with_button(response, "apply") is not None,
        f"The form was sent with {what}: the refund page should come back (200, with its "
        f"form) so the clerk can correct it; the answer was {response.status_code}.",
    )
    expect(
        'class="errorlist' in response.content.decode(),
        f"The form was sent with {what}, and the page came back without saying what is "
        "wrong: render the bound form, whose errors Django lists in class=\"errorlist\".",
    )


@pytest.mark.task(1, points=1)
def test_the_page_names_the_selected_orders_and_at_most_twenty(admin_client):
    expect_action_offered(admin_client, Order, ACTION)
    few = make_orders(3, prefix="F")
    others = make_orders(2, prefix="O")
    many = make_orders(45, prefix="M")

    small = numbers_on(refund_page(admin_client, few))
    big = numbers_on(refund_page(admin_client, many))

    expect(small == {o.number for o in few},
           f"The page for 3 orders names {sorted(small)}; it should name each selected order "
           f"by its number, {sorted(o.number for o in few)}, and no other.")
    expect(not small & {o.number for o in others}, "The page names an order not selected.")
    expect(0 < len(big) <= 20,
           f"The page for 45 orders names {len(big)} of them: name at most 20, and count the "
           "rest, so the page stays readable at any size.")


@pytest.mark.task(1, points=2)
def test_the_page_sums_up_what_will_be_refunded_and_skipped(admin_client, settings):
    expect_action_offered(admin_client, Order, ACTION)
    settings.REFUND_DESK_INLINE_LIMIT = 40
    paid = make_orders(40, prefix="P")
    shipped = make_orders(1, status="shipped", prefix="S")
    earlier = make_orders(2, status="refunded", prefix="R")

    one = page_text(refund_page(admin_client, paid[:1]))
    mixed = page_text(refund_page(admin_client, paid[:19] + shipped + earlier))
    big = page_text(refund_page(admin_client, paid + shipped))
    at_limit = page_text(refund_page(admin_client, paid))

    wanted = [
        (one, "1 paid order will be refunded", "1 paid order"),
        (mixed, "19 paid orders will be refunded", "19 paid and 3 others"),
        (mixed, "3 will be skipped (already refunded or shipped)", "19 paid and 3 others"),
        (big, "40 paid orders will be refunded", "41 orders"),
        (big, "1 will be skipped (already refunded or shipped)", "41 orders"),
        (big, "and 21 more orders", "41 orders (20 named)"),
        (mixed, "and 2 more orders", "22 orders (20 named)"),
    ]
    missing = [f"{text!r} (for {what})" for page, text, what in wanted if text not in page]
    expect(not missing, "The page should sum the selection up, as the lesson's contract words "
           "it; missing: " + "; ".join(missing) + ". {% blocktranslate count %} picks the "
           "singular.")
    expect("will be skipped" not in one, "Nothing will be skipped from 1 paid order, yet "
           "the page says something will be.")
    expect("queued" in big and "queued" not in at_limit,
           "41 orders are above the limit of 40: the page should say the refund will be "
           "queued; for 40, at the limit, it should not.")


@pytest.mark.task(1, points=1)
def test_ids_that_no_longer_exist_are_refused_with_a_message(admin_client):
    expect_action_offered(admin_client, Order, ACTION)
    orders = make_orders(2)
    Order.objects.filter(pk__in=[o.pk for o in orders]).delete()

    response = post_action(admin_client, Order, ACTION, [o.pk for o in orders])

    expect(messages_of(response) == [("warning", GONE)] and response.redirect_chain,
           f"Every selected order was deleted before Run: the clerk should be back on the "
           f"list (return None) with the WARNING '{GONE}' alone; the answer was "
           f"{'a redirect' if response.redirect_chain else 'a page'} showing "
           f"{messages_of(response)}.")


@pytest.mark.task(1, points=1)
def test_primary_keys_are_posted_without_thousand_separators(admin_client, settings):
    expect_action_offered(admin_client, Order, ACTION)
    settings.USE_THOUSAND_SEPARATOR = True
    customer = Customer.objects.create(name="Big", email="big@example.com")
    order = Order.objects.create(pk=4321, number="B-04321", customer=customer, total=1)

    page = refund_page(admin_client, [order])

    values = [v for n, v in form_with_button(page, "apply")["fields"] if n == "_selected_action"]
    expect(values == ["4321"],
           f"With thousand separators on, the hidden inputs hold {values}; expected ['4321']: "
           "{{ pk|unlocalize }} (from {% load l10n %}).")


@pytest.mark.task(1, points=1)
def test_the_page_runs_as_many_queries_for_60_orders_as_for_3(admin_client):
    expect_action_offered(admin_client, Order, ACTION)
    few, many = make_orders(3, prefix="F"), make_orders(60, prefix="M")

    counts = []
    for orders in (few, many):
        with CaptureQueriesContext(connection) as queries:
            refund_page(admin_client, orders)
        counts.append(len(queries))

    expect(counts[0] == counts[1],
           f"The refund page ran {counts[0]} SQL queries for 3 orders and {counts[1]} for 60: "
           "something runs a query per order (a customer's name?). Fetch what the page shows "
           "for the whole selection at once.")


@pytest.mark.task(1, points=2)
def test_select_all_keeps_the_page_compact_and_refunds_what_the_filter_chose(
        admin_client, settings):
    expect_action_offered(admin_client, Order, ACTION)
    settings.REFUND_DESK_INLINE_LIMIT = 2000
    paid = make_orders(1500, prefix="P")
    shipped = make_orders(5, status="shipped", prefix="S")
    ticked = Order.objects.filter(status="paid").order_by("-id")[:100]

    page = refund_page(admin_client, ticked, select_across=True, query=PAID)
    form = form_with_button(page, "apply")
    hidden = sum(name == "_selected_action" for name, _ in form["fields"])
    response = apply(admin_client, page)

    expect(hidden <= 100,
           f"Under 'select all' the page's form carries {hidden} hidden '_selected_action' "
           "inputs: re-send only the changelist's own ticks (the URL's filters choose the "
           "rows), or a big selection exceeds DATA_UPLOAD_MAX_NUMBER_FIELDS.")
    expect(refunded(paid) == 1500 and refunded(shipped) == 0,
           f"'Select all 1,500' under the filter 'paid', then the refund: {refunded(paid)} of "
           "the 1,500 were refunded. With select_across the queryset holds every matching row.")
    expect_message(response, "success", "1500 orders were refunded.", ACTION)


@pytest.mark.task(1, points=1)
def test_a_get_request_never_refunds(admin_client):
    expect_action_offered(admin_client, Order, ACTION)
    orders = make_orders(2)

    admin_client.get(changelist_url(Order), {
        "action": ACTION, "apply": "1", "index": 0, "reason": "damaged",
        "_selected_action": [o.pk for o in orders],
    })

    expect(refunded(orders) == 0, "A GET request refunded orders. Only POSTs may change data.")


# Task 2: Refund the paid orders, and only them


@pytest.mark.task(2, points=3)
def test_the_paid_orders_are_refunded_and_the_others_skipped(admin_client):
    expect_action_offered(admin_client, Order, ACTION)
    paid = make_orders(3, prefix="P")
    shipped = make_orders(1, status="shipped", prefix="S")
    earlier = make_orders(1, status="refunded", prefix="R")
    untouched = make_orders(2, prefix="U")
    before = timezone.now()

    response = refund(admin_client, paid + shipped + earlier, reason="wrong_item",
                      note="Sent the blue ones.")

    rows = {o.pk: o for o in Order.objects.all()}
    expect(refunded(paid) == 3,
           f"{refunded(paid)} of the 3 selected paid orders were refunded: set their status to "
           "refunded.")
    expect(all(rows[o.pk].refunded_at and rows[o.pk].refunded_at >= before for o in paid),
           "A refunded order's refunded_at should be the moment of the refund.")
    expect(all((rows[o.pk].refund_reason, rows[o.pk].refund_note)
               == ("wrong_item", "Sent the blue ones.") for o in paid),
           "A refunded order should keep the form's reason and note (refund_reason, "
           "refund_note), from the validated form's cleaned_data.")
    expect(rows[shipped[0].pk].status == "shipped" and rows[shipped[0].pk].refunded_at is None,
           "A shipped order was changed: only paid orders are refunded.")
    expect(rows[earlier[0].pk].refunded_at < before
           and rows[earlier[0].pk].refund_reason == "late",
           "An order refunded earlier was refunded again (its date or reason changed): "
           "only paid orders are refunded.")
    expect(statuses(untouched) == ["paid", "paid"], "An order that was not selected changed.")
    expect(response.redirect_chain and response.redirect_chain[-1][0] == changelist_url(Order),
           "After the refund the clerk should land on the changelist: return None.")
    expect_message(response, "success", "3 orders were refunded.", ACTION)
    expect_message(response, "warning", "2 orders were skipped (already refunded or shipped).",
                   ACTION)


@pytest.mark.task(2, points=2)
def test_the_messages_say_one_order_in_the_singular_and_nothing_done_without_success(
        admin_client):
    expect_action_offered(admin_client, Order, ACTION)
    one = make_orders(1, prefix="P") + make_orders(1, status="shipped", prefix="S")
    none = make_orders(2, status="shipped", prefix="T")

    first = refund(admin_client, one)
    second = refund(admin_client, none)

    expect_message(first, "success", "1 order was refunded.", ACTION)
    expect_message(first, "warning", "1 order was skipped (already refunded or shipped).",
                   ACTION)
    expect(messages_of(second) == [
        ("warning", "2 orders were skipped (already refunded or shipped).")],
        f"Refunding 2 shipped orders refunds none: the clerk should see only the WARNING "
        f"'2 orders were skipped (already refunded or shipped).', not {messages_of(second)}.")


@pytest.mark.task(2, points=2)
def test_each_refund_is_in_the_history_written_in_bulk(admin_client, admin_user):
    expect_action_offered(admin_client, Order, ACTION)
    paid = make_orders(30, prefix="P")
    shipped = make_orders(2, status="shipped", prefix="S")
    page = refund_page(admin_client, paid + shipped)

    with CaptureQueriesContext(connection) as queries:
        apply(admin_client, page)

    entries = refund_entries()
    inserts = [q for q in queries.captured_queries
               if q["sql"].startswith('INSERT INTO "django_admin_log"')]
    expect(sorted(int(e.object_id) for e in entries) == sorted(o.pk for o in paid),
           f"The admin's history holds {entries.count()} change entries for the 30 refunded "
           "orders (and none for the skipped ones): write one per refunded order, "
           "LogEntry.objects.log_actions(..., action_flag=CHANGE).")
    expect({e.user_id for e in entries} == {admin_user.pk},
           "The history entries should name the clerk who refunded.")
    expect(all(e.change_message for e in entries),
           "A history entry has an empty change message: say what happened (the reason "
           "fits), so the order's history reads as more than 'changed'.")
    expect(0 < len(inserts) < 30,
           f"The 30 history entries took {len(inserts)} INSERTs: write them in bulk "
           "(log_actions with the whole list), not one by one.")


@pytest.mark.task(2, points=2)
def test_a_refund_that_fails_halfway_refunds_nothing(admin_client):
    expect_action_offered(admin_client, Order, ACTION)
    orders = make_orders(3)
    page = refund_page(admin_client, orders)
    failed = []

    admin_client.raise_request_exception = False
    with connection.execute_wrapper(partial(refuse_the_history, failed)), refusals_unlogged():
        response = apply(admin_client, page, follow=False)

    expect(failed, "The refund wrote no history entry, so this test could not make it fail; "
                   "test_each_refund_is_in_the_history_written_in_bulk says what it needs.")
    expect(refunded(orders) == 0,
           f"Writing the history failed (answer {response.status_code}), yet {refunded(orders)} "
           "orders stayed refunded: the refunds and their history go in one transaction "
           "(transaction.atomic), all or nothing.")


@pytest.mark.task(2, points=2)
def test_the_refund_runs_as_many_queries_for_60_orders_as_for_3(admin_client):
    expect_action_offered(admin_client, Order, ACTION)
    ContentType.objects.get_for_model(Order)  # Django caches it after its first use
    counts = []
    for size, prefix in ((3, "F"), (60, "M")):
        page = refund_page(admin_client, make_orders(size, prefix=prefix)
                           + make_orders(2, status="shipped", prefix=f"{prefix}S"))
        with CaptureQueriesContext(connection) as queries:
            apply(admin_client, page, follow=False)
        counts.append(len(queries))

    expect(counts[0] == counts[1],
           f"The refund ran {counts[0]} SQL queries for 3 orders and {counts[1]} for 60: "
           "something runs a query per order. One UPDATE for the paid ones, the history in "
           "bulk, the customers fetched with the orders.")


@pytest.mark.task(2, points=2)
def test_a_selection_that_changed_since_the_page_refunds_nothing(admin_client):
    expect_action_offered(admin_client, Order, ACTION)
    orders = make_orders(4, prefix="P")
    page = refund_page(admin_client, orders[:2], select_across=True, query=PAID)
    make_orders(1, prefix="N")  # a new paid order now matches the filter

    response = apply(admin_client, page, follow=False)

    expect_nothing_refunded(orders, response,
                            "Under 'select all', a new paid order matched after the page")
    expect(response.status_code == 200 and form_with_button(response, "apply") is not None,
           "The selection changed since the page: show the page again, listing the orders "
           f"as they are now (answer {response.status_code}).")
    expect_message(response, "warning", CHANGED, ACTION)


@pytest.mark.task(2, points=1)
def test_a_page_without_its_signed_listing_refunds_nothing(admin_client):
    expect_action_offered(admin_client, Order, ACTION)
    orders = make_orders(2)
    page = refund_page(admin_client, orders)
    data = fill(page, reason="damaged")
    own = [name for name in data if name not in {
        "csrfmiddlewaretoken", "action", "select_across", "index", "_selected_action",
        "reason", "note", "apply"}]
    for name in own:
        data[name] = ["forged"]

    response = admin_client.post(page.wsgi_request.get_full_path(), data, follow=True)

    expect(own, "The page's form carries no field of its own besides the reason and note: "
                "where is the signed digest of the orders it listed?")
    expect_nothing_refunded(orders, response, "The page's signed listing was forged")


@pytest.mark.task(2, points=1)
def test_orders_deleted_since_the_page_refund_nothing(admin_client):
    expect_action_offered(admin_client, Order, ACTION)
    orders = make_orders(3)
    page = refund_page(admin_client, orders)
    Order.objects.filter(pk__in=[o.pk for o in orders]).delete()

    response = apply(admin_client, page)

    expect(not mail.outbox and not refund_entries().exists(),
           "Every selected order was deleted before the refund, yet mail or history was "
           "written.")
    expect(messages_of(response) == [("warning", GONE)],
           f"Every selected order was deleted before the refund: the clerk should see the "
           f"WARNING '{GONE}' alone; the page shows {messages_of(response)}.")


# Task 3: Mail each customer once it is done


@pytest.mark.task(3, points=2)
def test_each_refunded_order_mails_its_customer(admin_client):
    expect_action_offered(admin_client, Order, ACTION)
    paid = make_orders(3, prefix="P")
    paid += make_orders(1, prefix="Q", customer=paid[0].customer)  # a second order of hers
    shipped = make_orders(1, status="shipped", prefix="S")

    refund(admin_client, paid + shipped, note="We are sorry for the broken vase.")

    sent = sorted((tuple(m.to), m.subject + m.body) for m in mail.outbox)
    expect(sorted(to for to, _ in sent) == sorted((o.customer.email,) for o in paid),
           f"{len(mail.outbox)} emails went to {[to for to, _ in sent]}; expected one per "
           f"refunded order, to its customer: {sorted(o.customer.email for o in paid)} (a "
           "customer with two refunded orders gets two), none for the skipped order.")
    expect(all(any(o.number in text for to, text in sent if to == (o.customer.email,))
               for o in paid),
           "Each email should name the order it refunds (its number), in subject or body.")
    expect(all("We are sorry for the broken vase." in text for _, text in sent),
           "The clerk wrote a note for the customers; the emails should carry it.")


@pytest.mark.task(3, points=2)
def test_the_mail_goes_out_only_once_the_refund_is_committed(
        admin_client, django_capture_on_commit_callbacks):
    expect_action_offered(admin_client, Order, ACTION)
    orders = make_orders(2)
    page = refund_page(admin_client, orders)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        apply(admin_client, page, commit=False)
    before_commit = len(mail.outbox)
    for callback in callbacks:
        callback()

    expect(before_commit == 0,
           f"{before_commit} emails went out before the refund's transaction committed: if "
           "it rolled back, those customers would be told of a refund that never happened. "
           "Send them in transaction.on_commit().")
    expect(len(mail.outbox) == 2,
           f"Once the transaction committed, {len(mail.outbox)} emails went out; expected 2.")


@pytest.mark.task(3, points=1)
def test_the_emails_share_one_connection(admin_client, settings):
    expect_action_offered(admin_client, Order, ACTION)
    settings.MAILERS = {"default": {"BACKEND": "workbook.testing.RecordingEmailBackend"}}
    RecordingEmailBackend.batches.clear()

    refund(admin_client, make_orders(3))

    batches = [count for _, count in RecordingEmailBackend.batches]
    expect(batches == [3],
           f"The 3 emails went out in {len(batches)} send_messages() call(s) of {batches}: "
           "build them all, then send them in one call, mailers.default.send_messages(list).")


@pytest.mark.task(3, points=1)
def test_a_rolled_back_refund_sends_no_mail(admin_client, django_capture_on_commit_callbacks):
    expect_action_offered(admin_client, Order, ACTION)
    orders = make_orders(2)
    page = refund_page(admin_client, orders)

    admin_client.raise_request_exception = False
    with django_capture_on_commit_callbacks(execute=True), \
            connection.execute_wrapper(partial(refuse_the_history, [])), refusals_unlogged():
        apply(admin_client, page, follow=False)

    expect(not mail.outbox,
           f"The refund failed and was rolled back, yet {len(mail.outbox)} customers were "
           "mailed: build the emails inside the transaction, send them in "
           "transaction.on_commit().")


@pytest.mark.task(3, points=1)
def test_a_mail_server_that_fails_after_the_commit_leaves_the_refund_done(admin_client, settings):
    expect_action_offered(admin_client, Order, ACTION)
    settings.MAILERS = {"default": {"BACKEND": "workbook.testing.RefusingEmailBackend"}}
    orders = make_orders(2)
    page = refund_page(admin_client, orders)

    try:
        with refusals_unlogged(), refusals_unlogged("django.test"):
            response = apply(admin_client, page)
    except ConnectionRefusedError:
        response = None

    expect(response is not None,
           "The mail server refused the emails after the refunds were committed, and the "
           "error went on to the clerk: an error page for refunds that were done. Once "
           "committed, a failure to mail is logged, not raised: on_commit(..., robust=True).")
    expect(refunded(orders) == 2, "The mail server failed after the commit, yet the orders "
                                  "are not refunded.")
    expect_message(response, "success", "2 orders were refunded.", ACTION)


# Task 4: Queue what is too big for a request


def refund_queued(client, orders, settings, limit, *, select_across=False, query="", **fields):
    settings.REFUND_DESK_INLINE_LIMIT = limit
    page = refund_page(client, orders, select_across=select_across, query=query)
    return apply(client, page, **fields)


@pytest.mark.task(4, points=3)
def test_a_selection_above_the_limit_is_queued_not_refunded(
        admin_client, admin_user, settings):
    expect_action_offered(admin_client, Order, ACTION)
    orders = make_orders(6, prefix="P") + make_orders(2, status="shipped", prefix="S")

    response = refund_queued(admin_client, orders, settings, 5, reason="late", note="Sorry!")

    tasks = list(DBTaskResult.objects.all())
    expect(refunded(orders) == 0 and not mail.outbox and not refund_entries().exists(),
           f"8 orders is above the limit of 5 (settings.REFUND_DESK_INLINE_LIMIT), yet the "
           f"request refunded {refunded(orders)} of them: above the limit, only queue.")
    expect(len(tasks) == 1,
           f"{len(tasks)} tasks were queued for one refund of 8 orders; expected 1: enqueue "
           "your @task function once with the whole selection.")
    args = tasks[0].args_kwargs
    given = [*args["args"], *args["kwargs"].values()]
    expect(sorted(o.pk for o in orders) in [sorted(a) for a in given if isinstance(a, list)]
           and "late" in given and "Sorry!" in given and admin_user.pk in given,
           f"The task was queued with {args}: pass the primary keys of the selection, the "
           "form's cleaned reason and note, and the clerk's id (JSON values, never a "
           "queryset).")
    expect_message(response, "info", "The refund of 8 orders was queued: the paid ones are "
                   "refunded, and their customers mailed, in the background.", ACTION)


@pytest.mark.task(4, points=3)
# The worker commits, and checks its connection between tasks as a long-lived process must:
# the test commits too, rather than hold everything in one transaction.
@pytest.mark.django_db(transaction=True)
def test_the_worker_refunds_a_queued_selection_as_the_request_would(
        admin_client, admin_user, settings):
    expect_action_offered(admin_client, Order, ACTION)
    paid = make_orders(6, prefix="P")
    shipped = make_orders(2, status="shipped", prefix="S")
    before = timezone.now()
    refund_queued(admin_client, paid + shipped, settings, 5, reason="late", note="Sorry!")

    run_the_worker()

    results = list(DBTaskResult.objects.all())
    expect(results and all(r.status == "SUCCESSFUL" for r in results),
           "The worker ran the queued task and it did not succeed: "
           + "; ".join(f"{r.status} {r.traceback.strip().splitlines()[-1] if r.traceback else ''}"
                       for r in results))
    rows = {o.pk: o for o in Order.objects.all()}
    expect(all(rows[o.pk].status == "refunded" and rows[o.pk].refunded_at >= before
               and (rows[o.pk].refund_reason, rows[o.pk].refund_note) == ("late", "Sorry!")
               for o in paid) and statuses(shipped) == ["shipped", "shipped"],
           f"After the worker's pass {refunded(paid)} of the 6 paid orders are refunded and "
           f"{refunded(shipped)} of the 2 shipped ones: the task does the very same work.")
    entries = refund_entries()
    expect(sorted(int(e.object_id) for e in entries) == sorted(o.pk for o in paid)
           and {e.user_id for e in entries} == {admin_user.pk},
           "The worker's refund should write the same history, naming the clerk who asked.")
    expect(sorted(m.to[0] for m in mail.outbox) == sorted(o.customer.email for o in paid),
           f"The worker's refund mailed {len(mail.outbox)} customers; expected the 6 whose "
           "orders were refunded.")
    expect(results[0].return_value == {"refunded": 6, "skipped": 2},
           f"The task returned {results[0].return_value!r}; the contract: "
           "{'refunded': 6, 'skipped': 2}.")


@pytest.mark.task(4, points=1)
def test_a_selection_at_the_limit_is_refunded_in_the_request(
        admin_client, settings):
    expect_action_offered(admin_client, Order, ACTION)
    orders = make_orders(5)

    response = refund_queued(admin_client, orders, settings, 5)

    expect(refunded(orders) == 5 and not DBTaskResult.objects.exists(),
           "5 orders is not above the limit of 5: refund them in the request, queue nothing.")
    expect_message(response, "success", "5 orders were refunded.", ACTION)


@pytest.mark.task(4, points=1)
def test_an_invalid_form_queues_nothing(admin_client, settings):
    expect_action_offered(admin_client, Order, ACTION)
    orders = make_orders(8)

    refund_queued(admin_client, orders, settings, 5, reason="")

    expect(not DBTaskResult.objects.exists(),
           "The form had no reason, yet a refund was queued: validate the form first.")


@pytest.mark.task(4, points=1)
def test_queuing_one_order_says_so_in_the_singular(
        admin_client, settings):
    expect_action_offered(admin_client, Order, ACTION)

    response = refund_queued(admin_client, make_orders(1), settings, 0)

    expect_message(response, "info", "The refund of 1 order was queued: it is refunded, and "
                   "its customer mailed, in the background.", ACTION)


@pytest.mark.task(4, points=2)
@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_halfway_refunds_nothing_and_the_next_refunds_each_order_once(
        admin_client, settings, tmp_path):
    needs_row_locks(connection)
    expect_action_offered(admin_client, Order, ACTION)
    orders = make_orders(3000)
    refund_queued(admin_client, orders[:1], settings, 0, select_across=True)
    mail_dir = tmp_path / "mails"
    # The test holds the 2,501st order locked: the worker stops there, halfway, whatever it
    # did before, and is killed (SIGKILL, as a power cut does) while it waits.
    with row_held(Order, orders[2500].pk):
        worker = WorkerProcess(mail_dir)
        try:
            wait_for_lock_waiters(1, "The worker's refund of 3,000 orders", [worker])
            killed = lock_waiters()
        finally:
            worker.kill()
    wait_until_gone(killed)

    expect(refunded(orders) == 0 and not refund_entries().exists() and not worker.mails(),
           f"The worker was killed halfway through a refund of 3,000 orders, yet "
           f"{refunded(orders):,} of them stay refunded, with {refund_entries().count():,} "
           f"history entries and {len(worker.mails()):,} emails. A worker can die at any "
           "moment: the whole refund is one transaction, and mails wait for its commit.")
    # A restart does not run the killed task again (django-tasks-db leaves it RUNNING): the
    # clerk, told nothing was refunded, queues the refund again.
    refund_queued(admin_client, orders[:1], settings, 0, select_across=True)
    again = WorkerProcess(mail_dir)
    again.finish()

    entries = refund_entries().count()
    expect(refunded(orders) == 3000 and entries == 3000 and len(again.mails()) == 3000,
           f"After the killed worker and a second one: {refunded(orders):,} of 3,000 orders "
           f"refunded, {entries:,} history entries, {len(again.mails()):,} emails; expected "
           "each order refunded, logged and mailed exactly once.")


# Task 5: Two clerks, one refund


@pytest.mark.task(5, points=2)
def test_the_same_page_sent_twice_refunds_and_mails_each_order_once(admin_client):
    expect_action_offered(admin_client, Order, ACTION)
    orders = make_orders(3)
    page = refund_page(admin_client, orders)

    apply(admin_client, page)
    again = apply(admin_client, page)

    expect(len(mail.outbox) == 3 and refund_entries().count() == 3,
           f"The clerk pressed the button twice: {len(mail.outbox)} emails and "
           f"{refund_entries().count()} history entries for 3 orders. The second press finds "
           "them refunded, and skips them.")
    expect_message(again, "warning", "3 orders were skipped (already refunded or shipped).",
                   ACTION)


@pytest.mark.task(5, points=3)
@pytest.mark.django_db(transaction=True)
def test_two_clerks_refunding_the_same_orders_at_once_refund_each_once(django_user_model):
    needs_row_locks(connection)
    first = clerk(django_user_model, "view_order", "refund_order", username="first")
    second = clerk(django_user_model, "view_order", "refund_order", username="second")
    expect_action_offered(first, Order, ACTION)
    orders = make_orders(5)
    pages = [refund_page(first, orders), refund_page(second, orders)]
    # Each clerk waits, after reading the orders, until the other has read them too (or
    # has been kept from reading them by a lock): without locks both read "paid".
    both_read = threading.Barrier(2, timeout=3)
    answers = []

    def read_then_wait(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if sql.startswith("SELECT") and '"refund_desk_order"' in sql and not both_read.broken:
            try:
                both_read.wait()
            except threading.BrokenBarrierError:
                pass
        return result

    def press(client, page):
        from django.db import connection as own

        try:
            with own.execute_wrapper(read_then_wait):
                answers.append(apply(client, page, follow=False).status_code)
        finally:
            own.close()

    threads = [threading.Thread(target=press, args=pair) for pair in zip((first, second), pages)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    entries = refund_entries().count()
    expect(refunded(orders) == 5 and entries == 5 and len(mail.outbox) == 5,
           f"Two clerks refunded the same 5 orders at the same moment: {len(mail.outbox)} "
           f"emails and {entries} history entries (answers {answers}). Lock the rows as you "
           "read them (select_for_update, in primary-key order), so that the second clerk "
           "waits, then finds them refunded and skips them.")


@pytest.mark.task(5, points=3)
@pytest.mark.django_db(transaction=True)
def test_two_desks_sorted_differently_refunding_thousands_at_once_never_deadlock(
        django_user_model, settings):
    needs_row_locks(connection)
    settings.REFUND_DESK_INLINE_LIMIT = 100_000
    by_number = clerk(django_user_model, "view_order", "refund_order", username="by_number")
    newest_first = clerk(django_user_model, "view_order", "refund_order", username="newest")
    expect_action_offered(by_number, Order, ACTION)
    orders = make_orders(2500, prefix="A") + make_orders(2500, prefix="B")
    # "Select all" on two lists: the B orders searched and sorted by number (the first
    # column), and every order as the model sorts them, newest first.
    pages = [refund_page(by_number, orders[-1:], select_across=True, query="q=B-&o=1"),
             refund_page(newest_first, orders[:1], select_across=True)]
    # A row the test holds stops the first desk at the 3,000th order, whatever it locked
    # before; the second desk then goes as far as it can before the test lets go. Locks taken
    # in two orders, or batches each in key order but not one after the other, meet there.
    with row_held(Order, orders[2999].pk):
        numbered = Clerk("by number", lambda: apply(by_number, pages[0], follow=False))
        numbered.start()
        wait_for_lock_waiters(1, "The first desk's refund", [numbered])
        newest = Clerk("newest first", lambda: apply(newest_first, pages[1], follow=False))
        newest.start()
        wait_for_lock_waiters(2, "Both desks' refunds", [numbered, newest])
    numbered.join(120), newest.join(120)

    answers = [newest.outcome(), numbered.outcome()]
    entries = refund_entries().count()
    expect(all(c.error is None and c.answer.status_code == 302 for c in (newest, numbered)),
           f"Two desks refunded overlapping selections at once, 2,500 orders sorted by number "
           f"and 5,000 newest first: {'; '.join(answers)}. A deadlock means the two locked the same "
           "rows in different orders: the queryset an action receives is sorted as the "
           "changelist is, and keys cut into batches are in order only within each batch. "
           "Lock in one order whatever the list's.")
    expect(refunded(orders) == 5000 and entries == 5000 and len(mail.outbox) == 5000,
           f"After two desks refunded overlapping selections at once: {refunded(orders)} "
           f"refunded, {entries} history entries, {len(mail.outbox)} emails; expected each "
           "order refunded, logged and mailed exactly once.")


def start_tracing(**_):
    tracemalloc.start()


@pytest.mark.task(4, points=2)
# The worker commits, so the mails really go after the commit (see the worker test above).
@pytest.mark.django_db(transaction=True)
def test_a_queued_refund_s_memory_stays_flat_when_the_selection_grows_fourfold(
        admin_client, settings):
    expect_action_offered(admin_client, Order, ACTION)
    settings.MAILERS = {"default": {"BACKEND": "workbook.testing.CountingEmailBackend"}}
    small, large = 2000, 8000  # one batch of 2,000 keys, and four
    customer = Customer.objects.create(name="Ada", email="ada@example.com")
    peaks = []
    for size, prefix in ((small, "S"), (large, "L")):
        orders = make_orders(size, prefix=prefix, customer=customer)
        refund_queued(admin_client, orders[:1], settings, 0, select_across=True,
                      query=f"number__startswith={prefix}-")
        CountingEmailBackend.batches.clear()
        # Measured from the moment the worker calls the task, its arguments already read:
        # what the task itself holds, the mails it sends after the commit included.
        task_started.connect(start_tracing)
        try:
            run_the_worker()
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            task_started.disconnect(start_tracing)
            tracemalloc.stop()
        expect(refunded(orders) == size and sum(CountingEmailBackend.batches) == size,
               f"The worker refunded {refunded(orders):,} of {size:,} queued orders and "
               f"mailed {sum(CountingEmailBackend.batches):,}; expected all of them.")
    growth = peaks[1] - peaks[0]
    expect(growth < 1_000_000,
           f"The worker's refund of {small:,} orders held at most {peaks[0] / 1e6:.1f} MB of "
           f"Python objects at once; of {large:,}, {peaks[1] / 1e6:.1f} MB: {growth / 1e6:.1f} "
           "MB more (tracemalloc). Something keeps every order, or every email, until the "
           "end: the orders of all batches, or every email built before the first is sent. "
           "Keep one batch of each in memory at a time.")


@pytest.mark.task(4, points=2)
# The worker commits (see the worker test above).
@pytest.mark.django_db(transaction=True)
def test_a_queued_selection_larger_than_one_statement_takes_is_refunded_whole(
        admin_client, settings):
    """SQLite refuses a statement with more parameters than it was built for (32,766 by
    default); the test lowers that to 2,500 on the worker's connections, above the 2,000 keys
    a batch may hold, and queues 3,000 orders: more than one statement takes."""
    expect_action_offered(admin_client, Order, ACTION)
    settings.MAILERS = {"default": {"BACKEND": "workbook.testing.CountingEmailBackend"}}
    customer = Customer.objects.create(name="Ada", email="ada@example.com")
    orders = make_orders(3000, prefix="Q", customer=customer)
    refund_queued(admin_client, orders[:1], settings, 0, select_across=True,
                  query="number__startswith=Q-")
    CountingEmailBackend.batches.clear()

    with query_parameters_limited(2500):
        run_the_worker()

    failed = [r for r in DBTaskResult.objects.all() if r.status != "SUCCESSFUL"]
    said = failed[0].traceback.strip().splitlines()[-1] if failed and failed[0].traceback else ""
    expect(not failed,
           f"The worker's refund of 3,000 queued orders ended {failed[0].status if failed else ''}"
           f": {said}. Each key in a pk__in is a parameter of the statement, and the database "
           "takes at most so many in one (here 2,500): send the keys a batch at a time, as the "
           "task's contract says, not all in one statement.")
    expect(refunded(orders) == 3000 and sum(CountingEmailBackend.batches) == 3000,
           f"The worker refunded {refunded(orders):,} of 3,000 queued orders and mailed "
           f"{sum(CountingEmailBackend.batches):,}; expected all of them.")
