from django.db import models


class Customer(models.Model):
    name = models.CharField(max_length=100)
    email = models.EmailField()

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class Order(models.Model):
    class Status(models.TextChoices):
        PAID = "paid", "Paid"
        SHIPPED = "shipped", "Shipped"
        REFUNDED = "refunded", "Refunded"

    class Reason(models.TextChoices):
        DAMAGED = "damaged", "Arrived damaged"
        LATE = "late", "Arrived too late"
        WRONG_ITEM = "wrong_item", "Wrong item sent"
        CANCELLED = "cancelled", "Cancelled by the customer"

    number = models.CharField(max_length=20, unique=True)
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="orders")
    total = models.DecimalField(max_digits=10, decimal_places=2)
    status = models.CharField(max_length=10, choices=Status, default=Status.PAID)
    refunded_at = models.DateTimeField(null=True, blank=True)
    refund_reason = models.CharField(max_length=20, choices=Reason, blank=True)
    # What the clerk added to the reason, if anything.
    refund_note = models.TextField(blank=True)

    class Meta:
        ordering = ["-id"]
        permissions = [("refund_order", "Can refund orders")]

    def __str__(self):
        return self.number
