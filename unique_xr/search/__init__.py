"""Search: the collection registry and STAC search (a STAC API, or a local catalog).

The subpackage is callable: ``unique_xr.search(...)`` is :func:`unique_xr.search.stac.search`.
"""

from unique_xr._callable import make_callable

make_callable(__name__, "unique_xr.search.stac:search")
