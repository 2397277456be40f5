"""Exercise 07: refund orders in bulk, as a support team does when a delivery went wrong.

The first POST, from the changelist, answers with a page that asks for a reason and refunds
nothing. That page posts the action back with `apply`: a reason that does not validate, or a
selection that is no longer the one the page listed, shows the page again and changes nothing.
Otherwise the paid orders among the selection are refunded in one transaction, with their rows
locked, a history entry each, and a mail to each customer once the transaction has committed.
A selection above settings.REFUND_DESK_INLINE_LIMIT is too big for a request: it is queued, and
the worker does the very same work.
"""

import hashlib
from array import array
from functools import partial

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth import get_permission_codename
from django.core import signing
from django.core.mail import EmailMessage, mailers
from django.db import router, transaction
from django.db.models import Count, Q
from django.tasks import task
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.crypto import constant_time_compare
from django.utils.translation import ngettext

from .models import Order

REFUND_TEMPLATE = "admin/refund_desk/order/mark_refunded.html"
DIGEST_FIELD = "digest"
# The page lists this many orders and counts the rest: it stays small at any selection.
LISTED = 20
# Primary keys per query: a queued selection may be 100,000 orders, and databases limit the
# parameters of one statement (SQLite's default build to 32,766).
BATCH = 2000
# Emails built and sent at a time, after the commit: memory stays flat at any selection.
MAIL_BATCH = 500
GONE = "Nothing was refunded: none of the selected orders exists any more."
CHANGED = (
    "Nothing was refunded: the selection no longer matches the page you confirmed. "
    "Check the orders below and confirm again."
)


class RefundForm(forms.Form):
    # No reason chosen until the clerk chooses one: a refund has no safe default.
    reason = forms.ChoiceField(choices=[("", "---------"), *Order.Reason.choices])
    note = forms.CharField(required=False, max_length=500, widget=forms.Textarea(attrs={"rows": 3}))


def selection_signer():
    # The salt names what the signature vouches for: a value signed elsewhere never passes.
    return signing.Signer(salt="refund_desk.OrderAdmin.mark_refunded")


def fingerprint(pks):
    """The same 64 characters for the same set of rows, however many there are."""
    return hashlib.sha256(",".join(str(pk) for pk in sorted(pks)).encode()).hexdigest()


def refund_email(order):
    """The one email a customer gets for one refunded order, from the order as refunded."""
    body = (
        f"Dear {order.customer.name},\n\n"
        f"your order {order.number} of {order.total} has been refunded.\n"
        f"Reason: {order.get_refund_reason_display()}.\n"
        + (f"{order.refund_note}\n" if order.refund_note else "")
    )
    return EmailMessage(f"Order {order.number} refunded", body, to=[order.customer.email])


@task
def refund_orders(order_pks, reason, note, user_id):
    """Refund the paid orders among ORDER_PKS and mail their customers; the request calls it
    for a small selection, the worker for a queued one. Returns what it did, by count."""
    using = router.db_for_write(Order)
    refunded_at = timezone.now()
    # Sorted once, before cutting: every batch, and so every lock, comes in key order.
    order_pks = sorted(order_pks)
    refunded = selected = 0
    with transaction.atomic(using=using):
        for start in range(0, len(order_pks), BATCH):
            # Locked in one order, so two clerks refunding overlapping selections cannot
            # deadlock: the second waits, then finds those orders refunded and skips them.
            orders = list(
                Order.objects.using(using)
                .select_for_update(of=("self",))
                .filter(pk__in=order_pks[start:start + BATCH])
                .order_by("pk")
            )
            selected += len(orders)
            paid = [order for order in orders if order.status == Order.Status.PAID]
            Order.objects.using(using).filter(pk__in=[order.pk for order in paid]).update(
                status=Order.Status.REFUNDED, refunded_at=refunded_at, refund_reason=reason,
                refund_note=note,
            )
            if paid:
                LogEntry.objects.log_actions(
                    user_id=user_id, queryset=paid, action_flag=CHANGE,
                    change_message=f"Refunded: {Order.Reason(reason).label}.",
                )
            refunded += len(paid)
            # Mailed only once the refunds are committed: a rollback must tell nobody
            # "refunded". By then they stand: a mail server that fails is logged, not a done
            # refund's error. Each batch of mails is built when it is sent; until then it
            # is 8 bytes a key.
            for first in range(0, len(paid), MAIL_BATCH):
                keys = array("q", (order.pk for order in paid[first:first + MAIL_BATCH]))
                transaction.on_commit(partial(mail_customers, keys), using=using, robust=True)
    return {"refunded": refunded, "skipped": selected - refunded}


def mail_customers(order_pks):
    """Mail the customers of these refunded orders over one connection. It runs robust: a
    mail server that fails loses this batch's mails, logged with its keys, and no other's."""
    orders = Order.objects.filter(pk__in=order_pks).select_related("customer")
    mailers.default.send_messages([refund_email(order) for order in orders])


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ["number", "customer", "total", "status", "refunded_at"]
    list_filter = ["status", "refund_reason"]
    list_select_related = ["customer"]
    search_fields = ["number", "customer__name"]
    actions = ["mark_refunded"]

    @admin.action(permissions=["refund"], description="Mark selected orders as refunded")
    def mark_refunded(self, request, queryset):
        if "apply" not in request.POST:
            return self.refund_page(request, queryset, RefundForm())
        form = RefundForm(request.POST)
        if not form.is_valid():
            return self.refund_page(request, queryset, form)
        pks = list(queryset.values_list("pk", flat=True))
        if not pks:
            self.message_user(request, GONE, messages.WARNING)
            return None
        if not self.page_listed(request, pks):
            self.message_user(request, CHANGED, messages.WARNING)
            return self.refund_page(request, queryset, form)
        work = (pks, form.cleaned_data["reason"], form.cleaned_data["note"], request.user.pk)
        if len(pks) > settings.REFUND_DESK_INLINE_LIMIT:
            transaction.on_commit(partial(refund_orders.enqueue, *work),
                                  using=router.db_for_write(Order))
            self.message_user(request, ngettext(
                "The refund of %(count)d order was queued: it is refunded, and its customer "
                "mailed, in the background.",
                "The refund of %(count)d orders was queued: the paid ones are refunded, and "
                "their customers mailed, in the background.",
                len(pks),
            ) % {"count": len(pks)}, messages.INFO)
            return None
        self.report(request, refund_orders.call(*work))
        return None

    def has_refund_permission(self, request):
        codename = get_permission_codename("refund", self.opts)
        return request.user.has_perm(f"{self.opts.app_label}.{codename}")

    def report(self, request, done):
        """A SUCCESS for what was refunded, a WARNING for what was skipped."""
        if done["refunded"]:
            self.message_user(request, ngettext(
                "%(count)d order was refunded.", "%(count)d orders were refunded.",
                done["refunded"],
            ) % {"count": done["refunded"]}, messages.SUCCESS)
        if done["skipped"]:
            self.message_user(request, ngettext(
                "%(count)d order was skipped (already refunded or shipped).",
                "%(count)d orders were skipped (already refunded or shipped).",
                done["skipped"],
            ) % {"count": done["skipped"]}, messages.WARNING)

    def page_listed(self, request, pks):
        """Did the page the user answered list exactly these rows?"""
        try:
            listed = selection_signer().unsign(request.POST.get(DIGEST_FIELD, ""))
        except signing.BadSignature:
            return False
        return constant_time_compare(listed, fingerprint(pks))

    def refund_page(self, request, queryset, form):
        """The page that asks for a reason, and re-posts the selection with it."""
        pks = list(queryset.values_list("pk", flat=True))
        if not pks:
            self.message_user(request, GONE, messages.WARNING)
            return None
        paid = queryset.aggregate(paid=Count("pk", filter=Q(status=Order.Status.PAID)))["paid"]
        select_across = request.POST.get("select_across") == "1"
        context = {
            **self.admin_site.each_context(request),
            "title": "Refund these orders?",
            "opts": self.opts,
            "form": form,
            "orders": queryset.select_related("customer")[:LISTED],
            "more": max(len(pks) - LISTED, 0),
            "paid": paid,
            "skipped": len(pks) - paid,
            "queued": len(pks) > settings.REFUND_DESK_INLINE_LIMIT,
            # With select_across the URL's filters choose the rows: the page re-sends only
            # the changelist's own checkboxes, never a hidden input per row.
            "selected": request.POST.getlist(helpers.ACTION_CHECKBOX_NAME) if select_across
            else pks,
            "select_across": select_across,
            "digest_field": DIGEST_FIELD,
            "digest": selection_signer().sign(fingerprint(pks)),
            "index": request.POST.get("index", "0"),
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "changelist_url": request.get_full_path(),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, REFUND_TEMPLATE, context)
