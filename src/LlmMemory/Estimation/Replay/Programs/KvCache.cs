namespace LlmMemory.Estimation.Replay;

/// <summary>
/// transformers' <c>DynamicCache</c>: <c>DynamicLayer.update</c> stores <c>torch.cat([self.keys, key_states], -2)</c>, a copy
/// of the cached and the new keys and values (the old tensors are freed when the new ones replace them, so during a decode
/// step one layer holds both); <c>DynamicSlidingWindowLayer</c> keeps a view of the same full-length copy, so after a
/// prefill longer than the window a sliding layer still holds every token.
/// </summary>
internal sealed class KvCache
{
    private readonly Dictionary<int, (Tensor Keys, Tensor Values)> _layers = [];

    /// <summary>Appends this step's <paramref name="k"/> and <paramref name="v"/> to layer <paramref name="layer"/>'s cache and returns the whole cache of the layer.</summary>
    public (Tensor K, Tensor V) Update(ReplayEngine s, int layer, Tensor k, Tensor v)
    {
        MemoryTag tag = s.Tag;
        s.Tag = MemoryTag.KvCache;
        (Tensor Keys, Tensor Values)? old = _layers.TryGetValue(layer, out var cached) ? cached : null;
        Tensor keys = Grown(s, old?.Keys, k);
        Tensor values = Grown(s, old?.Values, v);
        s.Tag = tag;
        if (old is { } previous)
        {
            previous.Keys.Release();
            previous.Values.Release();
        }

        _layers[layer] = (keys.Retain(), values.Retain());
        return (keys, values);
    }

    public void Release()
    {
        foreach ((Tensor keys, Tensor values) in _layers.Values)
        {
            keys.Release();
            values.Release();
        }

        _layers.Clear();
    }

    private static Tensor Grown(ReplayEngine s, Tensor? cached, Tensor added) => cached is null
        ? s.Cat([added], added.Shape)
        : s.Cat([cached, added], [.. added.Shape[..^2], cached.Shape[^2] + added.Shape[^2], added.Shape[^1]]);
}
