"""Exercise 07: refund orders in bulk, as a support team does when a delivery went wrong.

The first POST, from the changelist, answers with a page that asks for a reason and refunds
nothing. That page posts the action back with `apply`: a reason that does not validate, or a
selection that is no longer the one the page listed, shows the page again and changes nothing.
Otherwise the paid orders among the selection are refunded in one transaction, with their rows
locked, a history entry each, and a mail to each customer once the transaction has committed.
A selection above settings.REFUND_DESK_INLINE_LIMIT is too big for a request: it is queued, and
the worker does the very same work.
"""

from django.contrib import admin

# TODO: import what your form, your task and your action use here (lesson 07 names them).
from .models import Order

REFUND_TEMPLATE = "admin/refund_desk/order/mark_refunded.html"


# TODO: write the form of the page, the task that refunds (the request and the worker both
# run it) and any helpers here (lesson 07, tasks 1 to 5).


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ["number", "customer", "total", "status", "refunded_at"]
    list_filter = ["status", "refund_reason"]
    list_select_related = ["customer"]
    search_fields = ["number", "customer__name"]
    # TODO: list the action here by its method name (lesson 07, task 1).
    actions = []

    # TODO: write mark_refunded(self, request, queryset), labelled "Mark selected orders as
    # refunded", for users with the refund_order permission: without "apply" in the POST it
    # returns the page of REFUND_TEMPLATE, with it it refunds (lesson 07, tasks 1 to 5).
