#!/usr/bin/env python3
"""Where does cudaMalloc put each new segment of PyTorch's caching allocator, relative to the segments before it?

The allocator's best fit ties on the block address (c10/cuda/CUDACachingAllocator.cpp, BlockComparatorSize: stream, size,
then ptr), so when two free blocks of one size exist, the one at the lower address is taken. The replay orders segments
by creation (CachingAllocator.Pool.Compare: segment, then offset), which is the address order only if every cudaMalloc
returns a higher address than the previous one. This script records the order: it holds tensors of sizes that each need
a new segment (a 2 MiB small-pool segment, a 20 MiB large-buffer segment, then exact-size segments up to 8 GiB), twice
over, and prints every segment_alloc of the allocator's trace with its address, in the order the segments were made.

    python3 segment_order.py            # one NVIDIA GPU with about 27 GiB free; prints JSON lines, then a summary line
"""
import json

import torch

MiB = 1 << 20
# A 512 B tensor opens a 2 MiB small-pool segment; 4 MiB a 20 MiB kLargeBuffer segment; 12 MiB and more an exact one.
SIZES_MIB = [0.00048828125, 4, 12, 128, 1024, 4096, 8192]


def main():
    torch.cuda.memory._record_memory_history(max_entries=100000)
    held = [torch.empty(int(mib * MiB), dtype=torch.uint8, device='cuda') for _ in range(2) for mib in SIZES_MIB]
    torch.cuda.synchronize()
    trace = torch.cuda.memory._snapshot()['device_traces'][torch.cuda.current_device()]
    segments = [(e['addr'], e['size']) for e in trace if e['action'] == 'segment_alloc']
    for i, (addr, size) in enumerate(segments):
        print(json.dumps({'order': i, 'size': size, 'addr': hex(addr),
                          'vs_previous': None if i == 0 else ('lower' if addr < segments[i - 1][0] else 'higher')}))
    lower = sum(1 for a, b in zip(segments, segments[1:]) if b[0] < a[0])
    print(json.dumps({'segments': len(segments), 'lower_than_previous': lower, 'higher_than_previous': len(segments) - 1 - lower,
                      'gpu': torch.cuda.get_device_name(0), 'torch': torch.__version__, 'cuda': torch.version.cuda}))
    del held


if __name__ == '__main__':
    main()
