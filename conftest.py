# The workbook's machinery lives in the workbook package; this file only switches it on.
pytest_plugins = ["workbook.pytest_plugin"]

# Test runs only need to tell users apart, not to resist brute force: a fast hasher (the
# demo site, `workbook serve`, keeps Django's default ones).
FAST_PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def pytest_configure(config):
    from django.conf import settings

    settings.PASSWORD_HASHERS = FAST_PASSWORD_HASHERS
