from django.apps import AppConfig


class ExportConfig(AppConfig):
    # The folder name starts with a digit, so the app needs a label Python can use.
    name = "exercises.02_export"
    label = "export"
    verbose_name = "02 · Export"
