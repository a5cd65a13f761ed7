"""Load: lazy stacks on one target grid, QA masks, the Zarr cache.

The subpackage is callable: ``unique_xr.load(...)`` is :func:`unique_xr.load.stack.load`.
"""

from unique_xr._callable import make_callable

make_callable(__name__, "unique_xr.load.stack:load")
