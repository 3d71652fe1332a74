"""The host buffer cache behind CPU tensor storage: a training loop with steady shapes stops
going to the system allocator after its first step, values are unaffected by reused
buffers, and cpu_empty_cache returns everything."""

import os

import numpy as np

import lamina as lm

# madvise(MADV_HUGEPAGE) fails on kernels built without transparent huge pages.
_HAS_THP = os.path.isdir("/sys/kernel/mm/transparent_hugepage")


def _step(x, w):
    y = lm.relu(lm.matmul(x, w))
    return lm.grad(lm.sum(y * y), [w])[0]


def test_steady_shapes_are_served_from_the_cache():
    rng = np.random.default_rng(0)
    x = lm.tensor(rng.standard_normal((256, 300)).astype(np.float32))
    w = lm.tensor(rng.standard_normal((300, 200)).astype(np.float32), requires_grad=True)
    first = _step(x, w).numpy()
    for _ in range(2):  # until as many results are alive as in the loop below
        again = _step(x, w).numpy()
    before = lm.cpu_memory_stats()
    for _ in range(5):
        again = _step(x, w).numpy()
        np.testing.assert_array_equal(again, first)  # reused (dirty) buffers change nothing
    after = lm.cpu_memory_stats()
    assert after["misses"] == before["misses"]
    assert after["hits"] > before["hits"]


def test_zeros_from_a_reused_buffer_are_zero():
    a = lm.full((300, 300), 7.0)
    del a
    z = lm.zeros((300, 300))
    assert not np.any(z.numpy())


def test_empty_cache_and_small_buffers():
    keep = [lm.ones((400, 400)) for _ in range(3)]
    del keep
    assert lm.cpu_memory_stats()["cached_bytes"] >= 3 * 400 * 400 * 4
    lm.cpu_empty_cache()
    assert lm.cpu_memory_stats()["cached_bytes"] == 0
    small = lm.ones((10,))
    del small  # below the cached size: goes straight back to the system
    assert lm.cpu_memory_stats()["cached_bytes"] == 0


def _mapping_flags(address):
    """VmFlags of the mapping that holds `address`, from /proc/self/smaps (None elsewhere)."""
    try:
        lines = open("/proc/self/smaps").read().splitlines()
    except OSError:
        return None
    inside = False
    for line in lines:
        head = line.split()[0]
        if "-" in head and ":" not in head:
            lo, hi = (int(part, 16) for part in head.split("-"))
            inside = lo <= address < hi
        elif inside and head == "VmFlags:":
            return line.split()[1:]
    return None


def test_large_buffers_start_on_a_huge_page_and_ask_for_huge_pages():
    t = lm.zeros((3, 1024, 1024))  # 12 MiB
    address = t.numpy().ctypes.data
    assert address % (2 << 20) == 0
    advised = _HAS_THP and _mapping_flags(address) is not None
    if advised:
        assert "hg" in _mapping_flags(address)  # madvise(MADV_HUGEPAGE) took
    del t
    assert lm.cpu_memory_stats()["cached_bytes"] >= 12 << 20
    lm.cpu_empty_cache()
    assert lm.cpu_memory_stats()["cached_bytes"] == 0
    if advised:
        assert "hg" not in (_mapping_flags(address) or [])  # its own mapping went back to the system


def test_medium_buffers_share_huge_page_advice_and_come_back_after_emptying():
    keep = [lm.full((128, 1024), 7.0) for _ in range(4)]  # 512 KiB each
    flags = _mapping_flags(keep[0].numpy().ctypes.data)
    if flags is not None and _HAS_THP:
        assert "hg" in flags
    del keep
    lm.cpu_empty_cache()  # their pages go back; their addresses wait for the same size
    assert lm.cpu_memory_stats()["cached_bytes"] == 0
    again = [lm.full((128, 1024), 3.0) for _ in range(4)]
    for t in again:
        np.testing.assert_array_equal(t.numpy(), np.full((128, 1024), 3.0, np.float32))
