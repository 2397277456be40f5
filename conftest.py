# The workbook's machinery lives in the workbook package; this file only switches it on.
pytest_plugins = ["workbook.pytest_plugin"]
