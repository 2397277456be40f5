"""`python3 -m workbook`: set up .venv on first use, then run the command inside it."""

import sys

from workbook import bootstrap

if bootstrap.in_venv():
    bootstrap.ensure_venv()
    from workbook.cli import main

    sys.exit(main(sys.argv[1:]))
else:
    bootstrap.run_in_venv(sys.argv[1:])
