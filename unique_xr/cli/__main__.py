"""``python -m unique_xr.cli``: the same as the ``unique-xr`` command."""

from unique_xr.cli import app

app()
