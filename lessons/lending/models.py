"""Members borrow books: each loan is lent until the book comes back."""

from django.db import models


class Member(models.Model):
    name = models.CharField(max_length=100)
    # Blank when the member gave none; rows imported from elsewhere may even hold a bad one.
    email = models.EmailField(blank=True)
    joined_on = models.DateField()

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class Book(models.Model):
    title = models.CharField(max_length=200)
    isbn = models.CharField("ISBN", max_length=13, blank=True)

    class Meta:
        ordering = ["title"]

    def __str__(self):
        return self.title


class Loan(models.Model):
    class Status(models.TextChoices):
        LENT = "lent", "Lent"
        RETURNED = "returned", "Returned"

    book = models.ForeignKey(Book, on_delete=models.CASCADE, related_name="loans")
    # A member who still has loans on record cannot be deleted.
    member = models.ForeignKey(Member, on_delete=models.PROTECT, related_name="loans")
    lent_on = models.DateField()
    due_on = models.DateField()
    returned_on = models.DateField(null=True, blank=True)
    # The day of the first renewal: later renewals keep it.
    renewed_on = models.DateField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status, default=Status.LENT)

    class Meta:
        ordering = ["due_on"]
        permissions = [("send_reminders", "Can send overdue reminders")]

    def __str__(self):
        return f"{self.book} lent to {self.member}"
