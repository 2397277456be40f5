from django.conf import settings
from django.db import models


class Article(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        PUBLISHED = "published", "Published"

    title = models.CharField(max_length=200)
    status = models.CharField(max_length=10, choices=Status, default=Status.DRAFT)
    pub_date = models.DateTimeField("published", null=True, blank=True)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )

    class Meta:
        ordering = ["-id"]
        # A permission of our own, granted like add/change/delete/view in the admin.
        permissions = [("send_notifications", "Can send notifications to authors")]

    def __str__(self):
        return self.title
