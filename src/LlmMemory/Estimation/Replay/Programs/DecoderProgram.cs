using LlmMemory.Models;

namespace LlmMemory.Estimation.Replay;

/// <summary>
/// transformers 5 Llama-like decoders (Llama, Mistral, Qwen2/3, Gemma 1–3, Phi-3, and the MoE variants for inference):
/// <c>XForCausalLM.forward</c> written statement for statement (research/torch programs.py <c>Model</c>).
/// </summary>
internal sealed partial class DecoderProgram : ModelProgram
{
    private readonly DecoderStyle _style;

    public DecoderProgram(ReplayEngine engine, ModelArchitecture model, ReplayOptions options) : base(engine, model, options)
    {
        _style = DecoderStyle.Of(model);
        IReadOnlyList<TensorSpec> tensors = model.Tensors.Tensors;
        // torchtune's build (TorchtuneInit): a cloned build makes the template layer, then the embedding, head and final
        // norm, then the copies of the layer, each with its own rotary cache; a build in a loop makes the layers first.
        TorchtuneInit? init = options.TorchtuneInit;
        int outside = init is { ClonedLayers: false } ? int.MaxValue : -1;
        IEnumerable<int[]> order = Enumerable.Range(0, tensors.Count)
            .OrderBy(i => tensors[i].Layer is null ? (i == 0 || init is not null ? outside : int.MaxValue) : tensors[i].Layer)
            .ThenBy(i => DecoderStyle.Rank(tensors[i]))
            .ThenBy(i => i)
            .Select(i => new[] { i })
            .Aggregate(new List<int[]>(), FuseExpertGateUp);
        List<Tensor> template = init is { ClonedLayers: true } ? init.Template(engine, model, options, order) : [];
        IEnumerable<(long, ScalarType)> buffers = init is { ClonedLayers: true }
            ? Enumerable.Range(0, model.LayerCount).SelectMany(_ => TorchtuneInit.Rotary(model))
            : _style.Buffers(model);
        Weights = new ModelWeights(engine, model, options, order, buffers,
            init is null ? null : (i, create) => init.Build(engine, model, options, i, create));
        template.ForEach(t => t.Release());
        init?.Load(engine, model, options, order);
        LoadedBytes = engine.Allocator.Allocated;
        if (options.KbitPreparationFrom is not null)
        {
            // prepare_model_for_kbit_training(model), then get_peft_model: the casts come before the adapters.
            Weights.CastToFloat32(engine);
        }

        AddAdapters();
    }

    private readonly Dictionary<int, string> _prefixes = [];

    private string Prefix(int layer)
    {
        if (!_prefixes.TryGetValue(layer, out string? prefix))
        {
            prefix = $"model.layers.{layer}.";
            _prefixes[layer] = prefix;
        }

        return prefix;
    }

    public override ForwardResult Forward(bool labels, bool training)
    {
        bool useCache = !training || (Options.CacheInTraining && !Options.Checkpointing);
        return Forward(Ids, labels, training, useCache ? new KvCache() : null, past: 0, lastLogitsOnly: false);
    }

    /// <summary>
    /// One forward of <paramref name="ids"/> after <paramref name="past"/> cached tokens, appending to <paramref name="cache"/>;
    /// with <paramref name="lastLogitsOnly"/> the head computes the last position only (<c>logits_to_keep=1</c>, as generate() asks).
    /// </summary>
    private ForwardResult Forward(Tensor ids, bool labels, bool training, KvCache? cache, long past, bool lastLogitsOnly)
    {
        ReplayEngine s = Engine;
        (long b, long n) = (ids.Shape[0], ids.Shape[1]);
        s.Layer = -1;
        Tensor x = s.Embedding(ids, Weights["model.embed_tokens.weight"]);
        // XModel.forward keeps `inputs_embeds` (hidden_states = inputs_embeds) until it returns, after the final norm: the
        // embedding's output, scaled by √h where the embedding module scales it (Gemma 3), before the scaling where the
        // model scales it (Gemma 1 and 2: hidden_states = hidden_states * normalizer).
        Tensor? normalizer = null;
        Tensor? embeddings = _style.EmbedScaleBuffer || Options.LitGpt ? null : x.Retain();
        if (_style.GemmaNorms)
        {
            normalizer = s.Empty([], x.Type);
            x = Blocks.Rebind(x, s.Mul(x, normalizer));
        }

        // LitGPT's GPT.forward rebinds x block by block: the embedding output dies in the first block.
        embeddings ??= Options.LitGpt ? null : x.Retain();

        if (Options.Lora is not null && Options.Checkpointing && training)
        {
            x.RequiresGrad = true; // enable_input_require_grads
        }

        Tensor positions = s.Empty([n], ScalarType.Int64);
        (Dictionary<AttentionKind, Tensor?> masks, Tensor? lastMaskLocal) = Masks(x, b, n, n + past);
        DeviceMap? map = s.Placement?.Map;
        (Dictionary<AttentionKind, (Tensor Cos, Tensor Sin)> ropes, Tensor[] rotaryLocals) = map is null ? Rotary(x, n) : RotaryOn(map, x, n);
        string step = s.Phase.Split(':')[0];
        (Tensor Cos, Tensor Sin) rope = default;
        Tensor? mask = null;
        for (int layer = 0; layer < Model.LayerCount; layer++)
        {
            AttentionKind kind = Model.LayerAttention[layer];
            rope = ropes[_style.LocalRotary && kind == AttentionKind.Sliding ? AttentionKind.Sliding : AttentionKind.Full];
            mask = masks[kind];
            s.SetPhase($"{step}:layer{layer}");
            s.Layer = layer;
            if (training && Options.Checkpointing)
            {
                int li = layer;
                (Tensor Cos, Tensor Sin) r = rope;
                Tensor? m = mask;
                x = Blocks.Rebind(x, s.Checkpoint(h => Layer(li, h, r, m, null), x, [r.Cos, r.Sin, m], Options.OffloadCheckpoints));
            }
            else if (map is null)
            {
                x = Blocks.Rebind(x, Layer(layer, x, rope, mask, cache));
            }
            else
            {
                // accelerate's hook on the layer sends its arguments to the layer's GPU; the copies live while it runs.
                Tensor? hidden = Sent(x, map.OfLayer(layer - 1));
                Tensor? cos = Sent(rope.Cos, map.Rotary);
                Tensor? sin = Sent(rope.Sin, map.Rotary);
                Tensor? maskCopy = Sent(mask, map.Embedding);
                x = Blocks.Rebind(x, Layer(layer, hidden ?? x, (cos ?? rope.Cos, sin ?? rope.Sin), maskCopy ?? mask, cache));
                ReleaseAll([hidden, cos, sin, maskCopy]);
            }
        }

        s.Layer = ReplayEngine.HeadLayer;
        // `rope` and `mask` (and the last rotary table's cos/sin, the last sliding mask) stay referenced by the forward's
        // locals until it returns; the dictionaries are deleted before the head.
        Tensor?[] locals = [rope.Cos?.Retain(), rope.Sin?.Retain(), mask?.Retain(), normalizer, positions, lastMaskLocal, .. rotaryLocals];
        ReleaseAll(masks.Values);
        ReleaseAll(ropes.Values.SelectMany(r => new[] { r.Cos, r.Sin }));
        s.SetPhase($"{step}:head");
        Tensor? normInput = map is null ? null : Sent(x, map.OfLayer(Model.LayerCount - 1));
        Tensor h = Norm(normInput ?? x, "model.norm.weight");
        Blocks.Release(x, embeddings, normInput);
        if (lastLogitsOnly)
        {
            // hidden_states[:, -1:, :]: a view of the last position.
            h = Blocks.Rebind(h, s.View(h, [b, 1, h.Shape[^1]]));
        }

        if (map is null)
        {
            ForwardResult result = Head(h, labels, cache);
            ReleaseAll(locals);
            return result;
        }

        return HeadOn(map, h, labels, cache, locals);
    }

    /// <summary>
    /// The head of a model spread over GPUs: <c>lm_head</c>'s hook sends the normed hidden states to the head's GPU (a tied
    /// head is with the embedding), and the root module's hook (<c>io_same_device=True</c>) sends the outputs back to the
    /// GPU of the input ids, where the caller reads the logits; the originals die with the forward's output object.
    /// </summary>
    private ForwardResult HeadOn(DeviceMap map, Tensor h, bool labels, KvCache? cache, Tensor?[] locals)
    {
        ReplayEngine s = Engine;
        s.Device = map.Head;
        // The head releases what it was given; the normed hidden states on the norm's GPU live on in the model's output.
        Tensor? sent = Sent(h, map.Norm);
        ForwardResult result = Head(sent ?? h, labels, cache);
        if (sent is not null)
        {
            h.Release();
        }

        ReleaseAll(locals);
        s.Device = map.Embedding;
        if (map.Head == map.Embedding)
        {
            return result;
        }

        Tensor[] outputs = [.. result.Outputs.Select(o => s.Empty(o.Shape, o.Type, MemoryTag.Logits))];
        ReleaseAll(result.Outputs);
        return new ForwardResult(result.Loss, outputs, cache);
    }

    /// <summary>
    /// accelerate's <c>AlignDevicesHook.pre_forward</c>: <c>send_to_device</c> copies an argument that lies on another GPU
    /// than the module's (<c>tensor.to(device)</c>); null when it is already there.
    /// </summary>
    private Tensor? Sent(Tensor? x, int from) =>
        x is not null && Engine.Placement is not null && from != Engine.Device ? Engine.Empty(x.Shape, x.Type) : null;

    /// <summary>
    /// The rotary module on its own GPU (accelerate puts <c>model.rotary_emb</c> after the final norm): its hook sends the
    /// hidden states there for the call, and cos and sin are made there.
    /// </summary>
    private (Dictionary<AttentionKind, (Tensor Cos, Tensor Sin)>, Tensor[]) RotaryOn(DeviceMap map, Tensor x, long n)
    {
        ReplayEngine s = Engine;
        s.Device = map.Rotary;
        Tensor? sent = Sent(x, map.Embedding);
        var tables = Rotary(sent ?? x, n);
        sent?.Release();
        s.Device = map.Embedding;
        return tables;
    }

    /// <summary>
    /// transformers' <c>generate()</c> with greedy search and the dynamic cache (generation/utils.py <c>_sample</c>): a
    /// prefill of the prompt with <c>logits_to_keep=1</c>, then one forward per new token over the growing cache. Each step
    /// copies the last logits to fp32, lets the logits processors clone them (min_new_tokens), takes the argmax, and grows
    /// <c>input_ids</c> and <c>attention_mask</c> by one column with <c>torch.cat</c>; the caller keeps the prompt's own
    /// <paramref name="attentionMask"/>. The last token comes from the last forward: new_tokens forwards in all.
    /// </summary>
    public void Generate(int newTokens, Tensor attentionMask)
    {
        ReplayEngine s = Engine;
        (long b, long prompt) = (Ids.Shape[0], Ids.Shape[1]);
        var cache = new KvCache();
        Tensor inputIds = Ids.Retain();
        Tensor mask = attentionMask.Retain();
        Tensor cachePosition = s.Empty([prompt], ScalarType.Int64);
        s.SetPhase("forward");
        Tensor next = NextTokens(Forward(Ids, labels: false, training: false, cache, past: 0, lastLogitsOnly: true));
        int first = 1;
        if (newTokens > ReplayedDecodeSteps + 1)
        {
            // Past the replayed steps the cache is grown at once to where the last ones start: the replay stays bounded
            // (a decode step is one forward of every layer), and the peak of a long generation is at its end.
            first = newTokens - ReplayedDecodeSteps;
            s.SetPhase($"decode{first - 1}");
            cache.Extend(s, first - 1);
            s.Layer = -1;
            inputIds = Blocks.Rebind(inputIds, s.Cat([inputIds, next], [b, prompt + first - 1]));
            mask = Blocks.Rebind(mask, s.Cat([mask, next], [b, prompt + first - 1]));
        }

        for (int step = first; step <= newTokens; step++)
        {
            s.SetPhase($"decode{step}");
            s.Layer = -1;
            inputIds = Blocks.Rebind(inputIds, s.Cat([inputIds, next], [b, prompt + step]));
            mask = Blocks.Rebind(mask, s.Cat([mask, next], [b, prompt + step]));
            cachePosition = Blocks.Rebind(cachePosition, s.Empty([1], ScalarType.Int64));
            next.Release();
            if (step == newTokens)
            {
                break;
            }

            Tensor stepIds = s.Empty([b, 1], ScalarType.Int64);
            next = NextTokens(Forward(stepIds, labels: false, training: false, cache, past: prompt + step - 1, lastLogitsOnly: true));
            stepIds.Release();
        }

        Blocks.Release(inputIds, mask, cachePosition);
        cache.Release();
    }

    /// <summary>Decode steps replayed one by one at the end of a generation; earlier ones grow the cache in one step.</summary>
    public const int ReplayedDecodeSteps = 256;

    /// <summary><c>outputs.logits[:, -1, :].to(copy=True, dtype=torch.float32)</c>, the processors' clone, the argmax; then <c>del outputs</c> (the cache lives on).</summary>
    private Tensor NextTokens(ForwardResult result)
    {
        ReplayEngine s = Engine;
        Tensor logits = result.Outputs[0];
        long b = logits.Shape[0];
        Tensor scores = s.Empty([b, logits.Shape[^1]], ScalarType.Float32, MemoryTag.Logits);
        Tensor processed = s.Empty([b, logits.Shape[^1]], ScalarType.Float32, MemoryTag.Logits);
        Tensor next = s.Empty([b, 1], ScalarType.Int64);
        Blocks.Release(scores, processed);
        foreach (Tensor output in result.Outputs)
        {
            output.Release();
        }

        return next;
    }

    /// <summary>The block: <c>h = attn(norm(x)); x = x + h; h = mlp(norm(x)); return x + h</c> (Gemma: normed outputs too).</summary>
    private Tensor Layer(int layer, Tensor x, (Tensor Cos, Tensor Sin) rope, Tensor? mask, KvCache? cache)
    {
        ReplayEngine s = Engine;
        string p = Prefix(layer);
        Tensor h = Norm(x, p + "input_layernorm.weight");
        (Tensor attention, Tensor? probabilities) = Attention(layer, h, rope, mask, cache);
        h = Blocks.Rebind(h, attention);
        if (_style.SandwichNorms)
        {
            h = Blocks.Rebind(h, Norm(h, p + "post_attention_layernorm.weight"));
        }

        Tensor residual = s.Add(x, h);
        h.Release();
        h = Norm(residual, p + (_style.SandwichNorms ? "pre_feedforward_layernorm.weight" : "post_attention_layernorm.weight"));
        h = Blocks.Rebind(h, Model.Experts is { } moe && moe.MoeLayers.Contains(layer) ? Experts(layer, h) : Mlp(layer, h));
        if (_style.SandwichNorms)
        {
            h = Blocks.Rebind(h, Norm(h, p + "post_feedforward_layernorm.weight"));
        }

        Tensor y = s.Add(residual, h);
        Blocks.Release(residual, h, probabilities);
        return y;
    }

    /// <summary><c>down(act(gate(x)) * up(x))</c>.</summary>
    private Tensor Mlp(int layer, Tensor x)
    {
        ReplayEngine s = Engine;
        string p = Prefix(layer) + "mlp.";
        if (_style.FusedProjections)
        {
            // Phi-3: gate, up = gate_up_proj(x).chunk(2, -1); down(up * act(gate)).
            Tensor gateUp = Linear(p + "gate_up_proj.weight", x);
            long width = gateUp.Shape[^1] / 2;
            Tensor gate = Blocks.Slice(s, gateUp, width);
            Tensor up = Blocks.Slice(s, gateUp, width);
            gateUp.Release();
            Tensor product = s.Mul(up, Operand.Take(s.Unary(gate, UnaryKind.Silu)));
            up.Release();
            Tensor down = Linear(p + "down_proj.weight", Operand.Take(product));
            gate.Release();
            return down;
        }

        Tensor activated = s.Unary(Operand.Take(Linear(p + "gate_proj.weight", x)), UnaryKind.Silu);
        Tensor projected = Linear(p + "up_proj.weight", x);
        return Linear(p + "down_proj.weight", Operand.Take(s.Mul(Operand.Take(activated), Operand.Take(projected))));
    }

    private Tensor Norm(Tensor x, string weightName) => (Options.Compiled, _style.GemmaNorms) switch
    {
        (true, _) => Blocks.FusedRmsNorm(Engine, x, Weights[weightName]),
        _ when Options.LitGpt => Blocks.LitGptRmsNorm(Engine, x, Weights[weightName]),
        (false, true) => Blocks.GemmaRmsNorm(Engine, x, Weights[weightName]),
        (false, false) => Blocks.RmsNorm(Engine, x, Weights[weightName]),
    };

    /// <summary>
    /// Masks made once per forward, of n queries against <paramref name="keys"/> keys (n plus the cached tokens): eager
    /// builds a bool (1,1,n,keys) then the (b,1,n,keys) additive mask in the embeddings' type; SDPA skips the mask
    /// (<c>is_causal</c>, or a single query) unless a sliding window is shorter than the sequence, where it keeps a bool
    /// (1,1,n,n). Returns the masks by layer kind and the mask a local of the loop still refers to.
    /// </summary>
    private (Dictionary<AttentionKind, Tensor?> Masks, Tensor? Local) Masks(Tensor x, long b, long n, long keys)
    {
        ReplayEngine s = Engine;
        var masks = new Dictionary<AttentionKind, Tensor?>();
        Tensor? local = null;
        foreach (AttentionKind kind in Model.LayerAttention.Distinct())
        {
            if (Options.EagerAttention)
            {
                Tensor boolean = s.Empty([1, 1, n, keys], ScalarType.Bool);
                masks[kind] = s.Empty([b, 1, n, keys], x.Type);
                boolean.Release();
            }
            else if (kind == AttentionKind.Full || Model.SlidingWindow is not int window || n < window)
            {
                masks[kind] = null;
            }
            else
            {
                Tensor first = s.Empty([1, 1, n, n], ScalarType.Bool);
                Tensor second = s.Empty([1, 1, n, n], ScalarType.Bool);
                first.Release();
                masks[kind] = second;
                local?.Release();
                local = second.Retain();
            }
        }

        return (masks, local);
    }

    /// <summary>
    /// The rotary module's cos and sin in the hidden type, (1, 1, s, d) views (a local and a global table for Gemma 3).
    /// Returns the tables and the last table's cos and sin, which locals keep.
    /// </summary>
    private (Dictionary<AttentionKind, (Tensor Cos, Tensor Sin)> Tables, Tensor[] Locals) Rotary(Tensor x, long n)
    {
        ReplayEngine s = Engine;
        long d = Model.LatentAttention?.RopeHeadDimension ?? Model.HeadDimension;
        var tables = new Dictionary<AttentionKind, (Tensor, Tensor)>();
        Tensor[] locals = [];
        foreach (AttentionKind kind in _style.LocalRotary ? new[] { AttentionKind.Full, AttentionKind.Sliding } : [AttentionKind.Full])
        {
            Tensor frequencies = s.Empty([1, n, d], ScalarType.Float32);
            Tensor cos = s.To(Operand.Take(s.Empty([1, n, d], ScalarType.Float32)), x.Type);
            Tensor sin = s.To(Operand.Take(s.Empty([1, n, d], ScalarType.Float32)), x.Type);
            frequencies.Release();
            tables[kind] = (s.View(cos, [1, 1, n, d]), s.View(sin, [1, 1, n, d]));
            ReleaseAll(locals);
            locals = [cos, sin];
        }

        return (tables, locals);
    }

    private static void ReleaseAll(IEnumerable<Tensor?> tensors)
    {
        foreach (Tensor? t in tensors)
        {
            t?.Release();
        }
    }

    /// <summary>Experts of one layer are stored fused by transformers 5: gate and up projections in one 3-D parameter.</summary>
    private List<int[]> FuseExpertGateUp(List<int[]> groups, int[] next)
    {
        TensorSpec t = Model.Tensors.Tensors[next[0]];
        if (t.Form == TensorForm.ExpertLinear && t.Module == "up_proj" && groups.Count > 0
            && Model.Tensors.Tensors[groups[^1][0]] is { Form: TensorForm.ExpertLinear, Module: "gate_proj" } gate && gate.Layer == t.Layer)
        {
            groups[^1] = [.. groups[^1], next[0]];
        }
        else
        {
            groups.Add(next);
        }

        return groups;
    }
}
