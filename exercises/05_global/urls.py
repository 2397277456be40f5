from django.urls import path

from .sites import site

# Mounted under /global/ by the workbook: this site's admin is /global/admin/.
urlpatterns = [path("admin/", site.urls)]
