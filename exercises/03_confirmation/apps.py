from django.apps import AppConfig


class ConfirmationConfig(AppConfig):
    # The folder name starts with a digit, so the app needs a label Python can use.
    name = "exercises.03_confirmation"
    label = "confirmation"
    verbose_name = "03 · Confirmation"
