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

    def __str__(self):
        return self.title


class Comment(models.Model):
    """Deleting an article deletes its comments (CASCADE)."""

    article = models.ForeignKey(Article, on_delete=models.CASCADE, related_name="comments")
    name = models.CharField(max_length=100)
    body = models.TextField()

    def __str__(self):
        return f"{self.name} on {self.article}"


class FeaturedSlot(models.Model):
    """A place on the home page. While an article fills one, it cannot be deleted (PROTECT)."""

    name = models.CharField(max_length=100, unique=True)
    article = models.ForeignKey(
        Article, on_delete=models.PROTECT, related_name="featured_slots"
    )

    def __str__(self):
        return self.name


class Translation(models.Model):
    """An article translated by a translator. While one exists, the original cannot be
    deleted (RESTRICT); deleting the translator's account takes their translations with it."""

    article = models.ForeignKey(
        Article, on_delete=models.RESTRICT, related_name="translations"
    )
    language = models.CharField(max_length=10)
    translator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )

    def __str__(self):
        return f"{self.language} translation #{self.pk}"
