"""Exercise 05: one action for every model of an admin site.

export_selected_objects knows no model: it exports whatever queryset it is given, one column
per concrete field. Added to the site with add_action(), every ModelAdmin of the site offers
it, except one that opts out.
"""

import csv
import io
from datetime import date, time
from itertools import batched

from django.contrib import admin
from django.contrib.admin import ActionLocation
from django.http import StreamingHttpResponse

from .models import ApiKey, Article, Category
from .sites import site

BATCH_SIZE = 2000
# No exported cell may begin with one of these: a spreadsheet may run it as a formula. The
# first seven are OWASP's CSV Injection page's; NUL is OWASP ASVS 5.0's (V1.2.10), because
# LibreOffice Calc drops it and then runs the "=" behind it.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "\n", "\0")


def csv_cell(value):
    """A database value as a CSV cell: dates in ISO 8601, no formulas.

    None needs nothing: csv.writer writes it as an empty cell.
    """
    if isinstance(value, (date, time)):
        return value.isoformat()
    # Leading spaces hide nothing: LibreOffice's "Trim spaces" import option removes them.
    if isinstance(value, str) and value.lstrip(" ").startswith(FORMULA_TRIGGERS):
        return "'" + value
    return value


def csv_chunks(header, rows):
    """Yield CSV text a batch of rows at a time, header first."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    for batch in batched(rows, BATCH_SIZE):
        writer.writerows(batch)
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue()


@admin.action(description="Export selected objects")
def export_selected_objects(modeladmin, request, queryset):
    """Stream the selected rows of any model as CSV, one column per concrete field."""
    opts = modeladmin.model._meta
    fields = opts.concrete_fields
    # attname is "author_id" for a foreign key: its primary key, with no join and no query.
    values = queryset.values_list(*[field.attname for field in fields])
    rows = (
        [csv_cell(value) for value in row] for row in values.iterator(chunk_size=BATCH_SIZE)
    )
    response = StreamingHttpResponse(
        csv_chunks([field.name for field in fields], rows),
        content_type="text/csv; charset=utf-8",
    )
    filename = f"{opts.app_label}.{opts.model_name}.csv"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


# Every ModelAdmin of this site offers the export; Django's own admin.site is untouched.
site.add_action(export_selected_objects, "export_selected")


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

    def get_actions(self, request, action_location=ActionLocation.CHANGE_LIST):
        actions = super().get_actions(request, action_location)
        # Keys are secrets: this model opts out of the site-wide export.
        actions.pop("export_selected", None)
        return actions
