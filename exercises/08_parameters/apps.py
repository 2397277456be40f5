from django.apps import AppConfig


class ParametersConfig(AppConfig):
    # The folder name starts with a digit, so the app needs a label Python can use.
    name = "exercises.08_parameters"
    label = "parameters"
    verbose_name = "08 · Actions that take a parameter"
