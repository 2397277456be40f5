from django.apps import AppConfig


class ConditionalConfig(AppConfig):
    # The folder name starts with a digit, so the app needs a label Python can use.
    name = "exercises.04_conditional"
    label = "conditional"
    verbose_name = "04 · Conditional actions"
