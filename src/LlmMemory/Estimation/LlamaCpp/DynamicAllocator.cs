namespace LlmMemory.Estimation.LlamaCpp;

/// <summary>
/// <c>ggml_dyn_tallocr</c> (ggml-alloc.c): the offset allocator behind one compute buffer. The buffer size is the highest
/// offset it ever reaches.
/// </summary>
/// <remarks>
/// Allocation takes the smallest free block that fits, excluding the last block (ties go to the later block); otherwise it
/// cuts from the last block, which is unbounded. A freed range merges with an adjacent free block, or is inserted sorted by
/// offset. Sizes are padded to the buffer's alignment (32 on the CPU, <c>TENSOR_ALIGNMENT</c>; 128 on CUDA).
/// </remarks>
internal sealed class DynamicAllocator(long alignment)
{
    private readonly List<FreeBlock> _blocks = [new(0, 1L << 62)];

    public long Alignment { get; } = alignment;

    /// <summary>The buffer size: the end of the highest block ever allocated.</summary>
    public long MaxSize { get; private set; }

    public long Allocate(long bytes)
    {
        long size = Pad(bytes);
        int best = -1;
        long bestSize = long.MaxValue;
        for (int i = 0; i < _blocks.Count - 1; i++)
        {
            if (_blocks[i].Size >= size && _blocks[i].Size <= bestSize)
            {
                best = i;
                bestSize = _blocks[i].Size;
            }
        }

        if (best == -1)
        {
            best = _blocks.Count - 1;
        }

        FreeBlock block = _blocks[best];
        long offset = block.Offset;
        block.Offset += size;
        block.Size -= size;
        if (block.Size == 0)
        {
            _blocks.RemoveAt(best);
        }

        MaxSize = Math.Max(MaxSize, offset + size);
        return offset;
    }

    public void Free(long offset, long bytes)
    {
        long size = Pad(bytes);
        for (int i = 0; i < _blocks.Count; i++)
        {
            FreeBlock block = _blocks[i];
            if (block.Offset + block.Size == offset)
            {
                block.Size += size;
                if (i + 1 < _blocks.Count && block.Offset + block.Size == _blocks[i + 1].Offset)
                {
                    block.Size += _blocks[i + 1].Size;
                    _blocks.RemoveAt(i + 1);
                }

                return;
            }

            if (offset + size == block.Offset)
            {
                block.Offset = offset;
                block.Size += size;
                if (i > 0 && _blocks[i - 1].Offset + _blocks[i - 1].Size == block.Offset)
                {
                    _blocks[i - 1].Size += block.Size;
                    _blocks.RemoveAt(i);
                }

                return;
            }
        }

        int at = 0;
        while (at < _blocks.Count && _blocks[at].Offset < offset)
        {
            at++;
        }

        _blocks.Insert(at, new FreeBlock(offset, size));
    }

    public long Pad(long bytes) => (bytes + Alignment - 1) / Alignment * Alignment;

    private sealed class FreeBlock(long offset, long size)
    {
        public long Offset { get; set; } = offset;

        public long Size { get; set; } = size;
    }
}
