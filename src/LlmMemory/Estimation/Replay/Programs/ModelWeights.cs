using LlmMemory.Models;

namespace LlmMemory.Estimation.Replay;

/// <summary>The model's parameters on the device, by checkpoint name, and the LoRA adapters created after them.</summary>
internal sealed class ModelWeights
{
    private readonly Dictionary<string, Tensor> _byName = new(StringComparer.Ordinal);
    private readonly Dictionary<string, LoraAdapter> _adapters = new(StringComparer.Ordinal);
    private readonly List<Tensor> _parameters = [];
    private readonly List<(string[] Names, Tensor Parameter)> _created = [];
    private readonly bool _trainBase;

    /// <summary>
    /// Allocates the parameters in <paramref name="order"/>, the order the model's modules create them (indices into the
    /// tensor inventory; a group of several is one fused parameter, as transformers 5 stores experts' gate and up
    /// projections), then the non-parameter buffers a program needs (rotary <c>inv_freq</c>, fp32). <paramref name="build"/>,
    /// when given, makes each unsharded parameter (the inventory index and the plain allocation) with what its library does
    /// around it (torchtune's NF4 quantization, <see cref="TorchtuneInit"/>).
    /// </summary>
    public ModelWeights(ReplayEngine engine, ModelArchitecture model, ReplayOptions options, IEnumerable<int[]> order,
        IEnumerable<(long Elements, ScalarType Type)> buffers, Func<int, Func<Tensor>, Tensor>? build = null)
    {
        ArgumentNullException.ThrowIfNull(engine);
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(options);
        IReadOnlyList<TensorSpec> tensors = model.Tensors.Tensors;
        foreach (int[] group in order)
        {
            StoredWeight stored = options.Weights[group[0]];
            if (engine.Placement is { } placement)
            {
                // from_pretrained(device_map=...) loads each parameter onto its module's GPU.
                engine.Device = placement.Map.OfTensor(tensors[group[0]]);
            }

            bool trainable = options.TrainBase && stored.Type.IsFloatingPoint();
            long bytes = group.Sum(i => options.Weights[i].Bytes);
            Tensor Allocate() => engine.Parameter([.. tensors[group[0]].Shape], stored.Type, trainable, MemoryTag.Weight, bytes);
            (Tensor p, Tensor? stepped) = engine.Sharded is { } sharded
                ? sharded.Add(tensors[group[0]].Layer, [.. tensors[group[0]].Shape], stored with { Bytes = bytes }, trainable, tensors[group[0]].Role)
                : Unsharded(build is null ? Allocate() : build(group[0], Allocate));
            string[] names = [.. group.Select(i => Canonical(tensors[i].Name))];
            foreach (string name in names)
            {
                _byName[name] = p;
            }

            _created.Add((names, p));

            // A sharded run steps rank 0's shard, on the device unless CPU offload runs the optimizer in host memory.
            if (trainable && stepped is not null && engine.Sharded?.Options.Offload != true)
            {
                _parameters.Add(stepped);
            }
        }

        _trainBase = options.TrainBase;
        if (engine.Sharded is { Options.UntiedHead: true } untie && model.TiedEmbeddings)
        {
            // to_empty() gave the head its own storage: a root parameter shaped and stored as the embedding.
            int embedding = tensors.ToList().FindIndex(t => t.Role == TensorRole.TokenEmbedding);
            (Tensor head, Tensor? stepped) = untie.Add(null, [.. tensors[embedding].Shape], options.Weights[embedding], options.TrainBase, TensorRole.OutputHead);
            _byName[UntiedHeadName] = head;
            if (options.TrainBase && stepped is not null && !untie.Options.Offload)
            {
                _parameters.Add(stepped);
            }
        }

        // What a weights file stores besides parameters (quantization scales, zero points), then the program's own buffers.
        foreach (StoredWeight stored in options.Weights.Skip(tensors.Count))
        {
            Buffers.Add(engine.Parameter([stored.Bytes], ScalarType.UInt8, false, MemoryTag.Weight));
        }

        if (engine.Placement is { } rotary)
        {
            // The rotary module's inv_freq (and Gemma's embedding scale, a few bytes) on the rotary module's GPU.
            engine.Device = rotary.Map.Rotary;
        }

        foreach ((long elements, ScalarType type) in buffers)
        {
            Buffers.Add(engine.Empty([elements], type, MemoryTag.Weight));
        }

        // A sharding engine lays out what it keeps once the model is built (DeepSpeed's flat partitions and fp32 master).
        if (engine.Sharded is { } layout)
        {
            layout.Loaded();
            _parameters.AddRange(layout.Stepped);
        }

        if (engine.Placement is { } start)
        {
            engine.Device = start.Map.Embedding;
        }
    }

    /// <summary>
    /// PEFT's <c>prepare_model_for_kbit_training</c> (peft/utils/other.py): <c>for param in model.parameters(): if param.dtype
    /// in (float16, bfloat16) and not Params4bit: param.data = param.data.to(torch.float32)</c>. In creation order, each
    /// 16-bit parameter gets its fp32 copy, then its 16-bit storage is freed (the allocator keeps the block cached);
    /// quantized storage (4-bit, int8) is left as it is. Frozen, as the function leaves every base parameter.
    /// </summary>
    public void CastToFloat32(ReplayEngine engine)
    {
        ArgumentNullException.ThrowIfNull(engine);
        for (int i = 0; i < _created.Count; i++)
        {
            (string[] names, Tensor old) = _created[i];
            if (old.Type is not (ScalarType.BFloat16 or ScalarType.Float16))
            {
                continue;
            }

            Tensor cast = engine.Parameter(old.Shape, ScalarType.Float32, false, MemoryTag.Weight);
            old.Release();
            foreach (string name in names)
            {
                _byName[name] = cast;
            }

            _created[i] = (names, cast);
        }
    }

    private static (Tensor Compute, Tensor Stepped) Unsharded(Tensor parameter) => (parameter, parameter);

    /// <summary>The name of a tied model's head once a sharded run untied it (<see cref="Sharding.UntiedHead"/>).</summary>
    public const string UntiedHeadName = "lm_head.weight";

    /// <summary>Non-parameter buffers, kept for the whole run.</summary>
    public List<Tensor> Buffers { get; } = [];

    /// <summary>The parameters the optimizer steps, in creation order.</summary>
    public IReadOnlyList<Tensor> Trainable => _parameters;

    public Tensor this[string name] => _byName.TryGetValue(name, out Tensor? t) ? t : throw new InvalidOperationException($"The replay needs {name}, which the inventory lacks.");

    public Tensor? Find(string name) => _byName.GetValueOrDefault(name);

    /// <summary>The name a program asks for: a packed quantized tensor (<c>q_proj.qweight</c>, <c>weight_packed</c>) is its module's <c>.weight</c>.</summary>
    private static string Canonical(string name)
    {
        int dot = name.LastIndexOf('.');
        return dot < 0 || name.EndsWith(".bias", StringComparison.Ordinal) ? name : string.Concat(name.AsSpan(0, dot), ".weight");
    }

    public LoraAdapter? AdapterOf(string weightName) => _adapters.GetValueOrDefault(weightName);

    /// <summary>A parameter of the program that the tensor inventory does not list (a task head), trained with the base.</summary>
    public Tensor AddParameter(ReplayEngine engine, string name, long[] shape, ScalarType type)
    {
        ArgumentNullException.ThrowIfNull(engine);
        Tensor p = engine.Parameter(shape, type, _trainBase, MemoryTag.Weight);
        _byName[name] = p;
        if (_trainBase)
        {
            _parameters.Add(p);
        }

        return p;
    }

    /// <summary>
    /// Creates the adapters after the base model, as PEFT does (each moved to the base layer's device as it is made):
    /// A [r, in], B [out, r] and, for DoRA, the magnitude [out].
    /// </summary>
    public void AddAdapters(ReplayEngine engine, LoraReplay lora)
    {
        ArgumentNullException.ThrowIfNull(engine);
        ArgumentNullException.ThrowIfNull(lora);
        foreach (TensorSpec target in lora.Targets)
        {
            Tensor a = engine.Parameter([lora.Rank, target.InFeatures], lora.Type, true, MemoryTag.Adapter);
            Tensor b = engine.Parameter([target.OutFeatures, lora.Rank], lora.Type, true, MemoryTag.Adapter);
            Tensor? magnitude = lora.Dora ? engine.Parameter([target.OutFeatures], lora.Type, true, MemoryTag.Adapter) : null;
            _adapters[target.Name] = new LoraAdapter(a, b, magnitude);
            _parameters.Add(a);
            _parameters.Add(b);
            if (magnitude is not null)
            {
                _parameters.Add(magnitude);
            }
        }
    }
}

/// <summary>One adapted linear's LoRA matrices and DoRA magnitude.</summary>
internal sealed record LoraAdapter(Tensor A, Tensor B, Tensor? Magnitude);
