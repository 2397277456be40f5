from importlib import import_module

from django.contrib import admin
from django.urls import include, path
from django.utils.module_loading import module_has_submodule

from lessons.lending.sites import desk

from .metadata import exercises

urlpatterns = [
    path("admin/", admin.site.urls),
    # The worked example's own admin site.
    path("lending/desk/", desk.urls),
]

# An exercise that needs URLs of its own (an admin site, say) gets them under /<label>/.
urlpatterns += [
    path(f"{exercise.label}/", include(f"{exercise.module}.urls"))
    for exercise in exercises()
    if module_has_submodule(import_module(exercise.module), "urls")
]
