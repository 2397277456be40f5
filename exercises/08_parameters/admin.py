"""Exercise 08: actions that take a parameter, and one that needs no selection.

The desk's editors move articles between categories from the action bar, on the list and on
an article's own page, and archive every article published over a year ago with one button.
"""

from django.contrib import admin

from .models import Article, Category

YEAR_DAYS = 365  # an article published longer ago than this is old


# TODO: write the action bar's form, with the category to move to, and move_to_category,
# which reads it wherever it runs (lesson 08, tasks 1, 2 and 4).


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin):
    list_display = ["name"]
    search_fields = ["name"]


@admin.register(Article)
class ArticleAdmin(admin.ModelAdmin):
    list_display = ["title", "status", "pub_date", "category"]
    list_filter = ["status", "category"]
    search_fields = ["title"]

    # TODO: give the changelist's "Archive old articles" button the URL it posts to, and
    # the view behind it (lesson 08, tasks 3 and 4).
