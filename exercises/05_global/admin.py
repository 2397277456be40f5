"""Exercise 05: one action for every model of an admin site.

export_selected_objects knows no model: it exports whatever queryset it is given, one column
per concrete field. Added to the site with add_action(), every ModelAdmin of the site offers
it, except one that opts out.
"""

from django.contrib import admin

from .models import ApiKey, Article, Category
from .sites import site

BATCH_SIZE = 2000
# No exported cell may begin with one of these: a spreadsheet may run it as a formula. The
# first seven are OWASP's CSV Injection page's; NUL is OWASP ASVS 5.0's (V1.2.10), because
# LibreOffice Calc drops it and then runs the "=" behind it.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "\n", "\0")


# TODO: write the helpers your export needs here: one value of any model as a CSV cell, and
# the CSV text sent a batch of rows at a time (lesson 05, tasks 1 and 2).


# TODO: write export_selected_objects(modeladmin, request, queryset), labelled "Export selected
# objects", and add it to this exercise's site, not admin.site, under the name
# "export_selected" (lesson 05, tasks 1, 2 and 4).


@admin.register(Category, site=site)
class CategoryAdmin(admin.ModelAdmin):
    list_display = ["name"]
    search_fields = ["name"]


@admin.register(Article, site=site)
class ArticleAdmin(admin.ModelAdmin):
    list_display = ["title", "status", "pub_date", "category"]
    list_filter = ["status", "category"]
    search_fields = ["title"]


@admin.register(ApiKey, site=site)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["name", "created"]

    # TODO: take the site's export out of what this admin offers, keeping delete_selected
    # (lesson 05, task 3).
