namespace LlmMemory.Estimation.Replay;

/// <summary>
/// transformers' <c>DynamicCache</c>: <c>DynamicLayer.update</c> stores <c>torch.cat([self.keys, key_states], -2)</c>, a copy
/// of the cached and the new keys and values (the old tensors are freed when the new ones replace them, so during a decode
/// step one layer holds both copies of its keys, then of its values); <c>DynamicSlidingWindowLayer</c> keeps a view of the same full-length copy, so after a
/// prefill longer than the window a sliding layer still holds every token. <c>DynamicLayer.lazy_initialization</c> makes both
/// empty tensors in the first keys' type (<c>self.dtype = key_states.dtype</c>; <c>self.values = torch.tensor([], dtype=self.dtype)</c>),
/// and <c>cat</c> takes its output type from all its inputs, the skipped empty one included (aten TensorShape.cpp, cat's meta
/// function: <c>out_dtype = at::native::result_type(tensors)</c>): under autocast the rotary tables are fp32 (they take the
/// fp32 embeddings' type), so the keys are fp32 and the bf16 values are cached as fp32 too.
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
        // self.keys = torch.cat(...) frees the old keys before self.values = torch.cat(...) makes the new values.
        Tensor keys = Grown(s, old?.Keys, k, k.Type);
        old?.Keys.Release();
        Tensor values = Grown(s, old?.Values, v, keys.Type); // the empty values were made in the keys' type
        old?.Values.Release();
        s.Tag = tag;
        _layers[layer] = (keys.Retain(), values.Retain());
        return (keys, values);
    }

    /// <summary>Grows every layer by <paramref name="tokens"/> positions at once, as that many decode steps would, one cat per tensor.</summary>
    public void Extend(ReplayEngine s, long tokens)
    {
        foreach (int layer in _layers.Keys.Order().ToArray())
        {
            (Tensor keys, Tensor values) = _layers[layer];
            s.Layer = layer; // each layer's cache grows on its own GPU when the model spans several
            Tensor k = s.Empty([.. keys.Shape[..^2], tokens, keys.Shape[^1]], keys.Type);
            Tensor v = s.Empty([.. values.Shape[..^2], tokens, values.Shape[^1]], values.Type);
            (Tensor grownKeys, Tensor grownValues) = Update(s, layer, k, v);
            Blocks.Release(k, v, grownKeys, grownValues);
        }
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

    /// <summary><c>torch.cat([cached, added], -2)</c>; the first update concatenates onto an empty tensor of type <paramref name="empty"/>.</summary>
    private static Tensor Grown(ReplayEngine s, Tensor? cached, Tensor added, ScalarType empty) => cached is null
        ? s.Cat([added], added.Shape, empty)
        : s.Cat([cached, added], [.. added.Shape[..^2], cached.Shape[^2] + added.Shape[^2], added.Shape[^1]]);
}
