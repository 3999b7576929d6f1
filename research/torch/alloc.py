"""Simulator of PyTorch's CUDA caching allocator (c10/cuda/CUDACachingAllocator.cpp, default config:
no expandable_segments, no max_split_size_mb, no garbage_collection_threshold).

Rules reproduced (constants from CUDACachingAllocator.cpp):
  kMinBlockSize  = 512      every request is rounded up to a multiple of 512 bytes
  kSmallSize     = 1 MiB    requests <= 1 MiB are served from the small pool
  kSmallBuffer   = 2 MiB    small-pool segments are 2 MiB
  kMinLargeAlloc = 10 MiB   large requests < 10 MiB get a 20 MiB segment (kLargeBuffer)
  kRoundLarge    = 2 MiB    larger requests get a segment rounded up to 2 MiB
  best fit       : the smallest cached free block (same pool, same stream) that is >= the request
  split          : small pool: if the remainder >= 512 B; large pool: if the remainder > 1 MiB
                   (an unsplit remainder stays inside the allocated block and counts as allocated)
  free           : the block returns to its pool and merges with free neighbours of the same segment;
                   segments are never returned to the driver (no empty_cache) -> reserved only grows
  OOM            : when a new segment does not fit in the device, all fully-free cached segments are
                   released (cudaFree) and the allocation is retried once; if it still does not fit -> OOM
Stats mirror torch.cuda.memory_stats: allocated = sum of allocated block sizes, reserved = sum of segments.
"""
from __future__ import annotations

import bisect

KB = 1024
MiB = 1 << 20
kMinBlockSize = 512
kSmallSize = 1 * MiB
kSmallBuffer = 2 * MiB
kLargeBuffer = 20 * MiB
kMinLargeAlloc = 10 * MiB
kRoundLarge = 2 * MiB


class OOM(Exception):
    pass


def round_size(n: int) -> int:
    if n < kMinBlockSize:
        return kMinBlockSize
    return (n + kMinBlockSize - 1) // kMinBlockSize * kMinBlockSize


def allocation_size(n: int) -> int:
    if n <= kSmallSize:
        return kSmallBuffer
    if n < kMinLargeAlloc:
        return kLargeBuffer
    return (n + kRoundLarge - 1) // kRoundLarge * kRoundLarge


class Block:
    __slots__ = ('seg', 'off', 'size', 'free', 'prev', 'next', 'small')

    def __init__(self, seg, off, size, small):
        self.seg, self.off, self.size, self.small = seg, off, size, small
        self.free = True
        self.prev = self.next = None

    def key(self):
        return (self.size, self.seg, self.off)


class Allocator:
    def __init__(self, capacity: int | None = None):
        self.capacity = capacity          # bytes the allocator may reserve (device total - non-torch memory)
        self.pools = {True: [], False: []}  # small?, sorted list of (size, seg, off)
        self.blocks = {}                  # (seg, off) -> Block (free blocks only, for pool lookup)
        self.segments = {}                # seg id -> (size, first block)
        self.next_seg = 0
        self.allocated = 0
        self.reserved = 0
        self.peak_allocated = 0
        self.peak_reserved = 0
        self.n_segments_peak = 0
        self.on_peak = None               # callback when a new allocated peak is reached

    # -- pool helpers
    def _insert(self, b: Block):
        bisect.insort(self.pools[b.small], b.key())
        self.blocks[(b.seg, b.off)] = b

    def _remove(self, b: Block):
        p = self.pools[b.small]
        i = bisect.bisect_left(p, b.key())
        assert p[i] == b.key()
        p.pop(i)
        del self.blocks[(b.seg, b.off)]

    def _find(self, small: bool, size: int):
        p = self.pools[small]
        i = bisect.bisect_left(p, (size, -1, -1))
        if i < len(p):
            k = p[i]
            return self.blocks[(k[1], k[2])]
        return None

    def _new_segment(self, size: int, small: bool) -> Block:
        if self.capacity is not None and self.reserved + size > self.capacity:
            self.release_cached()
            if self.reserved + size > self.capacity:
                raise OOM(f'cannot reserve {size / MiB:.1f} MiB: reserved {self.reserved / MiB:.1f} MiB, '
                          f'allocated {self.allocated / MiB:.1f} MiB, capacity {self.capacity / MiB:.1f} MiB')
        sid = self.next_seg
        self.next_seg += 1
        b = Block(sid, 0, size, small)
        self.segments[sid] = [size, b]
        self.reserved += size
        if self.reserved > self.peak_reserved:
            self.peak_reserved = self.reserved
        return b

    def release_cached(self):
        """cudaFree every segment that is entirely free (what the allocator does before raising OOM)."""
        for sid, (size, first) in list(self.segments.items()):
            if first.free and first.next is None and first.prev is None:
                self._remove(first)
                del self.segments[sid]
                self.reserved -= size

    def malloc(self, nbytes: int) -> Block:
        size = round_size(nbytes)
        small = size <= kSmallSize
        b = self._find(small, size)
        if b is not None:
            self._remove(b)
        else:
            b = self._new_segment(allocation_size(size), small)
        rem = b.size - size
        if (small and rem >= kMinBlockSize) or ((not small) and rem > kSmallSize):
            nb = Block(b.seg, b.off + size, rem, small)
            nb.prev, nb.next = b, b.next
            if b.next is not None:
                b.next.prev = nb
            b.next = nb
            b.size = size
            self._insert(nb)
        b.free = False
        self.allocated += b.size
        if self.allocated > self.peak_allocated:
            self.peak_allocated = self.allocated
            if self.on_peak:
                self.on_peak()
        return b

    def free(self, b: Block):
        assert not b.free
        self.allocated -= b.size
        b.free = True
        # merge with neighbours
        n = b.next
        if n is not None and n.free:
            self._remove(n)
            b.size += n.size
            b.next = n.next
            if n.next is not None:
                n.next.prev = b
        p = b.prev
        if p is not None and p.free:
            self._remove(p)
            p.size += b.size
            p.next = b.next
            if b.next is not None:
                b.next.prev = p
            b = p
        self._insert(b)

    def reset_peaks(self):
        self.peak_allocated = self.allocated
        self.peak_reserved = self.reserved
