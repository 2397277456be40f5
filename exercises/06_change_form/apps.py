from django.apps import AppConfig


class ChangeFormConfig(AppConfig):
    # The folder name starts with a digit, so the app needs a label Python can use.
    name = "exercises.06_change_form"
    label = "change_form"
    verbose_name = "06 · Change-form actions"
