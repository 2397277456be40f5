from django.apps import AppConfig


class GlobalConfig(AppConfig):
    # The folder name starts with a digit, so the app needs a label Python can use.
    name = "exercises.05_global"
    label = "global"
    verbose_name = "05 · Global actions"
