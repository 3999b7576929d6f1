using LlmMemory.Models;

namespace LlmMemory.Estimation.Replay;

/// <summary>
/// Where <c>from_pretrained(device_map="auto")</c> puts each module of a decoder on N GPUs: transformers
/// (integrations/accelerate.py <c>_get_device_map</c>) caps every GPU but the last with <c>get_balanced_memory</c>, then
/// accelerate's <c>infer_auto_device_map</c> walks the modules in order, splitting a module that does not fit into its
/// children (never a decoder layer, the model's <c>_no_split_modules</c>) and keeping the largest layer's bytes free on GPU 0.
/// </summary>
/// <param name="Gpus">How many GPUs the model spans.</param>
/// <param name="Embedding">The GPU of <c>model.embed_tokens</c> (and of the input ids, which the caller puts on <c>model.device</c>).</param>
/// <param name="Layers">The GPU of each decoder layer.</param>
/// <param name="Norm">The GPU of the final <c>model.norm</c>.</param>
/// <param name="Rotary">The GPU of <c>model.rotary_emb</c>, which computes cos and sin once per forward.</param>
/// <param name="Head">The GPU of <c>lm_head</c> (a tied head goes with the embedding).</param>
/// <param name="MaxMemory">The <c>max_memory</c> each GPU was capped at, bytes (<see cref="Unbounded"/> without a GPU).</param>
internal sealed record DeviceMap(int Gpus, int Embedding, IReadOnlyList<int> Layers, int Norm, int Rotary, int Head, IReadOnlyList<long> MaxMemory)
{
    /// <summary>The free memory of a GPU the scenario does not name: nothing caps the placement but the balance.</summary>
    public const long Unbounded = long.MaxValue / 4;

    /// <summary>
    /// What <c>get_max_memory</c> leaves reserved: it creates <c>torch.tensor([0], device=i)</c> on each GPU before reading
    /// <c>mem_get_info</c>, which makes the caching allocator reserve one small segment (2 MiB); transformers adds the
    /// reserved-but-unallocated bytes back to each GPU's budget (<c>unused_memory = memory_reserved − memory_allocated</c>).
    /// </summary>
    public const long UnusedReserved = CachingAllocator.SmallBuffer;

    /// <summary>The GPU a replay layer index runs on: -1 before the blocks (the embedding), <see cref="ReplayEngine.HeadLayer"/> after them (the final norm).</summary>
    public int OfLayer(int layer) => layer < 0 ? Embedding : layer == ReplayEngine.HeadLayer ? Norm : Layers[layer];

    /// <summary>The GPU that holds <paramref name="tensor"/>.</summary>
    public int OfTensor(TensorSpec tensor)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        return tensor.Layer is int layer ? Layers[layer]
            : tensor.Role switch
            {
                TensorRole.OutputHead => Head,
                TensorRole.Norm => Norm,
                _ => Embedding,
            };
    }

    /// <summary>The modules on GPU <paramref name="device"/>, in model order ("the embedding, layers 0–38").</summary>
    public string Describe(int device)
    {
        var parts = new List<string>();
        if (Embedding == device)
        {
            parts.Add("the embedding");
        }

        int[] layers = [.. Enumerable.Range(0, Layers.Count).Where(i => Layers[i] == device)];
        if (layers.Length > 0)
        {
            parts.Add(layers.Length == 1 ? $"layer {layers[0]}" : $"layers {layers[0]}–{layers[^1]}");
        }

        if (Norm == device)
        {
            parts.Add("the final norm");
        }

        if (Head == device)
        {
            parts.Add("the head");
        }

        return parts.Count == 0 ? "nothing" : string.Join(", ", parts);
    }

    /// <summary>
    /// The placement of a decoder whose modules hold <paramref name="sizes"/> on <paramref name="gpus"/> GPUs of
    /// <paramref name="free"/> bytes each (<c>mem_get_info</c>'s free memory once the CUDA context exists;
    /// <see cref="Unbounded"/> when no GPU is named).
    /// </summary>
    /// <exception cref="ArgumentException">The model does not fit on the GPUs: accelerate would offload the rest to the CPU.</exception>
    public static DeviceMap Auto(ModuleSizes sizes, int gpus, long free)
    {
        ArgumentNullException.ThrowIfNull(sizes);
        ArgumentOutOfRangeException.ThrowIfLessThan(gpus, 2);
        long[] maxMemory = Balanced(sizes, gpus, free);
        Dictionary<string, int> placed = Infer(sizes, maxMemory);
        int Of(params string[] names) => names.Select(n => placed.TryGetValue(n, out int d) ? d : -1).First(d => d >= 0);
        int[] layers = [.. Enumerable.Range(0, sizes.Layers.Count).Select(i => Of($"model.layers.{i}", "model.layers", "model"))];
        return new DeviceMap(gpus, Of("model.embed_tokens", "model"), layers, Of("model.norm", "model"), Of("model.rotary_emb", "model"), Of("lm_head"),
            maxMemory);
    }

    /// <summary>
    /// <c>get_balanced_memory</c>: every GPU but the last gets <c>total ÷ N</c> plus a buffer of 1.25 × the larger of the first
    /// no-split block (decoder layer 0) and the mean size of the modules that hold parameters directly; the last keeps its
    /// free memory "just in case the buffer is not enough". transformers then adds the unused reserved bytes to each.
    /// </summary>
    private static long[] Balanced(ModuleSizes sizes, int gpus, long free)
    {
        long total = sizes.Total;
        long mean = total / Math.Max(sizes.LeafModules, 1);
        long buffer = 5 * Math.Max(sizes.Layers[0], mean) / 4;
        long perGpu = (total / gpus) + buffer;
        var max = new long[gpus];
        for (int i = 0; i < gpus; i++)
        {
            max[i] = (i < gpus - 1 ? Math.Min(perGpu, free) : free) + (free == Unbounded ? 0 : UnusedReserved);
        }

        return max;
    }

    /// <summary>
    /// <c>infer_auto_device_map</c> over <c>XForCausalLM</c>'s modules (<c>model</c>: <c>embed_tokens</c>, <c>layers</c>,
    /// <c>norm</c>, <c>rotary_emb</c>; then <c>lm_head</c>): a module that fits (with the module tied to it) goes on the current
    /// GPU; one that does not is split into its children unless it is a decoder layer or a leaf, else the next GPU is taken.
    /// GPU 0 keeps the largest remaining layer's bytes free (its <c>main_devices</c> role for offloaded layers).
    /// </summary>
    private static Dictionary<string, int> Infer(ModuleSizes sizes, long[] maxMemory)
    {
        int gpus = maxMemory.Length;
        Module[] layers = [.. sizes.Layers.Select((size, i) => new Module($"model.layers.{i}", size, NoSplit: true, []))];
        Module embedding = new("model.embed_tokens", sizes.Embedding, false, []);
        Module head = new("lm_head", sizes.Tied ? 0 : sizes.Head, false, []);
        Module model = new("model", sizes.Total - head.Size, false,
            [embedding, new Module("model.layers", sizes.Layers.Sum(), false, layers), new Module("model.norm", sizes.Norm, false, []),
                new Module("model.rotary_emb", sizes.Rotary, false, [])]);
        var queue = new List<Module> { model, head };
        var placed = new Dictionary<string, int>(StringComparer.Ordinal);
        var used = new long[gpus];
        int current = 0;
        (long maxLayer, List<string> maxNames) = MaxLayer(queue);
        while (queue.Count > 0)
        {
            Module module = queue[0];
            queue.RemoveAt(0);
            maxNames.RemoveAll(n => n == module.Name || n.StartsWith(module.Name + ".", StringComparison.Ordinal));
            if (maxNames.Count == 0)
            {
                (maxLayer, maxNames) = MaxLayer(queue);
            }

            if (current == gpus)
            {
                throw new ArgumentException(
                    $"{module.Name} does not fit on the {gpus} GPUs: accelerate's device_map=\"auto\" would offload it and the rest to the CPU, which is not modelled; add GPUs or choose larger ones");
            }

            // A tied head is placed with the embedding (get_module_size_with_ties adds the tied module's size: 0 for a tied lm_head).
            Module? tied = sizes.Tied && Contains(module, embedding) && !Contains(module, head) ? queue.Find(m => m == head) : null;
            long limit = maxMemory[current];
            long reserved = 0;
            if (current == 0)
            {
                limit -= maxLayer;
                reserved = maxLayer;
            }

            if (used[current] + module.Size + (tied?.Size ?? 0) <= limit)
            {
                used[current] += module.Size + (tied?.Size ?? 0);
                placed[module.Name] = current;
                if (tied is not null)
                {
                    queue.Remove(tied);
                    placed[tied.Name] = current;
                }

                continue;
            }

            if (used[current] + module.Size >= limit && module.Children.Count > 0 && !module.NoSplit)
            {
                queue.InsertRange(0, module.Children);
                (maxLayer, maxNames) = MaxLayer(queue);
                continue;
            }

            used[current] += reserved;
            current++;
            queue.Insert(0, module);
        }

        return placed;
    }

    private static bool Contains(Module outer, Module inner) => outer == inner || outer.Children.Any(c => Contains(c, inner));

    /// <summary><c>get_max_layer_size</c>: the largest module that cannot be split (a leaf or a decoder layer), with every module of that size.</summary>
    private static (long Size, List<string> Names) MaxLayer(IEnumerable<Module> modules)
    {
        long max = 0;
        var names = new List<string>();
        var pending = new List<Module>(modules);
        while (pending.Count > 0)
        {
            Module module = pending[0];
            pending.RemoveAt(0);
            if (module.Children.Count == 0 || module.NoSplit)
            {
                if (module.Size > max)
                {
                    (max, names) = (module.Size, [module.Name]);
                }
                else if (module.Size == max)
                {
                    names.Add(module.Name);
                }
            }
            else
            {
                pending.InsertRange(0, module.Children);
            }
        }

        return (max, names);
    }

    private sealed record Module(string Name, long Size, bool NoSplit, IReadOnlyList<Module> Children);
}

/// <summary>
/// The bytes of a decoder's modules as transformers' <c>compute_module_sizes</c> counts them: parameters and buffers, a
/// tied head not counted again.
/// </summary>
/// <param name="Embedding"><c>model.embed_tokens</c>.</param>
/// <param name="Layers">Each decoder layer.</param>
/// <param name="Norm">The final norm.</param>
/// <param name="Rotary">The rotary module's buffers (<c>inv_freq</c>, fp32).</param>
/// <param name="Head">An untied <c>lm_head</c>; 0 when tied.</param>
/// <param name="LeafModules">Modules that hold parameters or buffers directly (the count <c>get_balanced_memory</c> averages over).</param>
/// <param name="Tied">The head shares the embedding's weight.</param>
internal sealed record ModuleSizes(long Embedding, IReadOnlyList<long> Layers, long Norm, long Rotary, long Head, int LeafModules, bool Tied)
{
    public long Total => Embedding + Layers.Sum() + Norm + Rotary + (Tied ? 0 : Head);
}

/// <summary>One GPU's replay of a model spread by <see cref="DeviceMap"/>: tensors made on the other GPUs allocate nothing here.</summary>
/// <param name="Map">Where each module runs.</param>
/// <param name="Counted">The GPU whose allocator this replay follows.</param>
internal sealed record Placement(DeviceMap Map, int Counted);
