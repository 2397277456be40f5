from django.apps import AppConfig


class LendingConfig(AppConfig):
    name = "lessons.lending"
    label = "lending"
    verbose_name = "Lending desk (worked example)"
