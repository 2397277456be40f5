from django.apps import AppConfig


class RefundDeskConfig(AppConfig):
    # The folder name starts with a digit, so the app needs a label Python can use.
    name = "exercises.07_refund_desk"
    label = "refund_desk"
    verbose_name = "07 · Refund desk"
