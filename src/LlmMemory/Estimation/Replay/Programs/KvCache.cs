namespace LlmMemory.Estimation.Replay;

/// <summary>
/// transformers' <c>DynamicCache</c>: <c>DynamicLayer.update</c> stores <c>torch.cat([self.keys, key_states], -2)</c>, a copy
/// of the new keys and values; <c>DynamicSlidingWindowLayer</c> keeps a view of the same full-length copy, so after a
/// prefill longer than the window a sliding layer still holds every token.
/// </summary>
internal sealed class KvCache
{
    private readonly List<Tensor> _entries = [];

    public (Tensor K, Tensor V) Update(ReplayEngine s, Tensor k, Tensor v)
    {
        MemoryTag tag = s.Tag;
        s.Tag = MemoryTag.KvCache;
        Tensor keys = s.Cat([k], k.Shape);
        Tensor values = s.Cat([v], v.Shape);
        s.Tag = tag;
        _entries.Add(keys.Retain());
        _entries.Add(values.Retain());
        return (keys, values);
    }

    public void Release()
    {
        foreach (Tensor entry in _entries)
        {
            entry.Release();
        }

        _entries.Clear();
    }
}
