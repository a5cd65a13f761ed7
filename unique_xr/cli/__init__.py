"""The ``unique-xr`` command line: one module per command group, all under one error rule.

``_common`` holds the application and its boundary (a bad input ends in one ``error:`` line and
exit code 1, never a traceback); ``data`` the data layer (``demo``, ``collections``, ``search``),
``towers`` the tower models (``train``, ``predict``, ``join-landsat``), ``downscale`` and ``cnn``
their command groups. Commands only orchestrate: the work is in the packages they import.
"""

from unique_xr.cli._common import app
from unique_xr.cli import data, towers, downscale, cnn, cube  # noqa: E402,F401,I001 - registers the commands, in this order

__all__ = ["app"]
