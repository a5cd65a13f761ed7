"""torch's thread count inside blocks: set while inside, restored by the last block to leave."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from unique_xr._threads import torch_threads

torch = pytest.importorskip("torch")


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def test_set_inside_and_restored_after(two_threads):
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2
    with torch_threads(None):
        assert torch.get_num_threads() == 2
    with pytest.raises(RuntimeError), torch_threads(1):
        raise RuntimeError("a failing block")
    assert torch.get_num_threads() == 2


def test_overlapping_blocks_on_threads_restore_the_callers_setting(two_threads):
    # Every block enters before any leaves: a naive save/restore would have the later blocks save
    # the earlier blocks' 1 and leave torch at 1 threads.
    n = 4
    entered, leave = threading.Barrier(n), threading.Event()

    def block(_):
        with torch_threads(1):
            entered.wait(timeout=10)
            inside = torch.get_num_threads()
            leave.wait(timeout=10)
        return inside

    with ThreadPoolExecutor(n) as pool:
        futures = [pool.submit(block, i) for i in range(n)]
        leave.set()
        assert [f.result() for f in futures] == [1] * n
    assert torch.get_num_threads() == 2
