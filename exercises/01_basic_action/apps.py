from django.apps import AppConfig


class BasicActionConfig(AppConfig):
    # The folder name starts with a digit, so the app needs a label Python can use.
    name = "exercises.01_basic_action"
    label = "basic_action"
    verbose_name = "01 · Basic actions"
