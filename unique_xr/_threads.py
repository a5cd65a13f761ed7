"""torch's CPU thread count, set for a block of work and restored after, safely across threads.

Dask runs blocks in parallel, each of which may call torch; left at its default, every block
would start as many intra-op threads as there are cores. ``torch.set_num_threads`` is process
wide, so two blocks on one threaded worker that each save and restore it naively can leave it
at the blocks' value for good (the second saves the first's setting). :func:`torch_threads`
counts who is inside: the first to enter records the caller's setting, the last to leave puts
it back.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

_LOCK = threading.Lock()
_state = {"inside": 0, "before": None}


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """torch's intra-op threads set to ``n`` inside the block (None leaves them as they are).

    Examples
    --------
    >>> import torch
    >>> from unique_xr._threads import torch_threads
    >>> before = torch.get_num_threads()
    >>> with torch_threads(1):
    ...     torch.get_num_threads()
    1
    >>> torch.get_num_threads() == before
    True
    """
    if not n:
        yield
        return
    import torch

    with _LOCK:
        if _state["inside"] == 0:
            _state["before"] = torch.get_num_threads()
        _state["inside"] += 1
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        with _LOCK:
            _state["inside"] -= 1
            if _state["inside"] == 0:
                torch.set_num_threads(_state["before"])
                _state["before"] = None
