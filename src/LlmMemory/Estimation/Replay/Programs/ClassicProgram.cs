using LlmMemory.Models;

namespace LlmMemory.Estimation.Replay;

/// <summary>
/// LayerNorm decoders: GPT-2 and GPT-BigCode, GPT-NeoX, GPT-J, Falcon, OPT, BLOOM. The block is found by the roles of its
/// tensors (a fused or separate q/k/v projection and the output projection, the two MLP linears, one or two LayerNorms);
/// the family differences are in <see cref="ClassicStyle"/>. GPT-2 follows research/torch programs.py
/// <c>forward_gpt2</c> statement for statement.
/// </summary>
internal sealed class ClassicProgram : ModelProgram
{
    private readonly ClassicStyle _style;
    private readonly Block[] _blocks;
    private readonly string _embedding;
    private readonly string? _positions;
    private readonly (string Weight, string Bias)? _embeddingNorm;
    private readonly (string Weight, string Bias) _finalNorm;
    private readonly string _head;

    public ClassicProgram(ReplayEngine engine, ModelArchitecture model, ReplayOptions options) : base(engine, model, options)
    {
        _style = ClassicStyle.Of(model);
        IReadOnlyList<TensorSpec> tensors = model.Tensors.Tensors;
        _embedding = tensors.First(t => t.Role == TensorRole.TokenEmbedding).Name;
        _positions = tensors.FirstOrDefault(t => t.Role == TensorRole.PositionEmbedding)?.Name;
        int firstBlock = tensors.ToList().FindIndex(t => t.Layer is not null);
        (string, string)[] outerNorms = Norms(tensors.Where(t => t.Layer is null && t.Role == TensorRole.Norm));
        _embeddingNorm = outerNorms.Length > 1 || tensors.Take(firstBlock).Any(t => t.Role == TensorRole.Norm) ? outerNorms[0] : null;
        _finalNorm = outerNorms[^1];
        _head = tensors.FirstOrDefault(t => t.Role == TensorRole.OutputHead)?.Name ?? _embedding;
        _blocks = Enumerable.Range(0, model.LayerCount).Select(layer => new Block(
            [.. tensors.Where(t => t.Layer == layer && t.Role == TensorRole.Attention && t.Form == TensorForm.LinearWeight).Select(t => t.Name)],
            [.. tensors.Where(t => t.Layer == layer && t.Role == TensorRole.FeedForward && t.Form == TensorForm.LinearWeight).Select(t => t.Name)],
            Norms(tensors.Where(t => t.Layer == layer && t.Role == TensorRole.Norm)))).ToArray();
        Weights = new ModelWeights(engine, model, options, Enumerable.Range(0, tensors.Count).Select(i => new[] { i }),
            _style.Rotary ? [((model.RotaryDimension ?? model.HeadDimension) / 2, ScalarType.Float32)] : []);
        LoadedBytes = engine.Allocator.Allocated;
        AddAdapters();
    }

    public override ForwardResult Forward(bool labels, bool training)
    {
        ReplayEngine s = Engine;
        (long b, long n) = (Ids.Shape[0], Ids.Shape[1]);
        s.Layer = -1;
        bool eager = Options.EagerAttention || _style.AlwaysEager;
        Tensor positions = s.Empty([1, n], ScalarType.Int64);
        Tensor x = _positions is null ? s.Embedding(Ids, Weights[_embedding])
            : s.Add(Operand.Take(s.Embedding(Ids, Weights[_embedding])), Operand.Take(s.Embedding(positions, Weights[_positions])));
        _training = training;
        if (training && Model.EmbeddingDropout > 0)
        {
            x = Blocks.Rebind(x, s.Dropout(x)); // GPT-2: hidden_states = self.drop(inputs_embeds + position_embeds); GPT-J: self.drop(inputs_embeds)
        }

        if (_embeddingNorm is { } norm)
        {
            x = Blocks.Rebind(x, LayerNorm(x, norm));
        }

        KvCache? cache = !training || (Options.CacheInTraining && !Options.Checkpointing) ? new KvCache() : null;
        Tensor? mask = null;
        if (eager)
        {
            Tensor boolean = s.Empty([1, 1, n, n], ScalarType.Bool);
            mask = s.Empty([b, 1, n, n], x.Type);
            boolean.Release();
        }

        (Tensor Cos, Tensor Sin)? rope = _style.Rotary ? RotaryTables(x, n) : null;
        string step = s.Phase.Split(':')[0];
        for (int layer = 0; layer < Model.LayerCount; layer++)
        {
            s.SetPhase($"{step}:layer{layer}");
            s.Layer = layer;
            if (training && Options.Checkpointing)
            {
                int li = layer;
                x = Blocks.Rebind(x, s.Checkpoint(h => BlockForward(li, h.Retain(), mask, rope, null, eager), x,
                    [mask, rope?.Cos, rope?.Sin], Options.OffloadCheckpoints));
            }
            else
            {
                x = BlockForward(layer, x, mask, rope, cache, eager);
            }
        }

        s.Layer = ReplayEngine.HeadLayer;
        Blocks.Release(mask, rope?.Cos, rope?.Sin);
        s.SetPhase($"{step}:head");
        Tensor y = LayerNorm(x, _finalNorm);
        x.Release();
        MemoryTag tag = s.Tag;
        s.Tag = MemoryTag.Logits;
        string head = Weights.Find(_head) is null ? _embedding : _head;
        if (labels && Options.Loss is LossStyle.Chunked or LossStyle.ChunkedFused)
        {
            ForwardResult chunked = ChunkedHead(head, y);
            s.Tag = tag;
            positions.Release();
            return chunked;
        }

        Tensor logits = HeadLinear(head, y);
        s.ModelReturned();
        Tensor? loss = null;
        if (labels)
        {
            s.Tag = MemoryTag.Loss;
            loss = Blocks.CausalLmLoss(s, logits);
        }

        s.Tag = tag;
        Blocks.Release(positions, y);
        return new ForwardResult(loss, [logits], cache);
    }

    /// <summary>
    /// One block, taking over the reference to its input <paramref name="x"/> as the inline GPT-2 loop does (the input
    /// dies with <c>residual</c> after the attention's residual add in a sequential block).
    /// </summary>
    private Tensor BlockForward(int layer, Tensor x, Tensor? mask, (Tensor Cos, Tensor Sin)? rope, KvCache? cache, bool eager)
    {
        ReplayEngine s = Engine;
        Block block = _blocks[layer];
        Tensor residual = x;
        Tensor y = LayerNorm(x, block.Norms[0]);
        (Tensor o, Tensor? probabilities) = Attention(block, y, mask, rope, cache, eager, keepInput: Model.ParallelBlock);
        o = ResidualDropout(o);
        if (!Model.ParallelBlock)
        {
            x = s.Add(o, residual);
            Blocks.Release(o, residual);
            residual = x;
            y = LayerNorm(x, block.Norms[1]);
        }
        else if (block.Norms.Length > 1)
        {
            y = Blocks.Rebind(y, LayerNorm(x, block.Norms[1]));
        }

        Tensor f = Linear(block.FeedForward[0], y);
        y.Release();
        f = Blocks.Rebind(f, _style.CompositeGelu ? Blocks.GeluNew(s, f) : s.Unary(f, Model.ReluActivation ? UnaryKind.Relu : UnaryKind.Gelu));
        f = Blocks.Rebind(f, Linear(block.FeedForward[1], f));
        f = ResidualDropout(f);
        if (Model.ParallelBlock)
        {
            f = Blocks.Rebind(f, s.Add(f, o));
            o.Release();
        }

        Tensor output = s.Add(residual, f);
        Blocks.Release(f, residual, probabilities);
        return output;
    }

    /// <summary>
    /// q, k, v (fused or separate projections), rotary where the family uses it, the cache, eager or SDPA, the output
    /// projection. The block input <paramref name="y"/> is dropped after the projections unless the MLP still needs it.
    /// </summary>
    private (Tensor Output, Tensor? Probabilities) Attention(Block block, Tensor y, Tensor? mask, (Tensor Cos, Tensor Sin)? rope, KvCache? cache,
        bool eager, bool keepInput)
    {
        ReplayEngine s = Engine;
        (long b, long n) = (y.Shape[0], y.Shape[1]);
        (long a, long kv, long d) = (Model.AttentionHeadCount, Model.KeyValueHeadCount, Model.HeadDimension);
        Tensor q;
        Tensor k;
        Tensor v;
        if (block.Attention.Length == 2)
        {
            Tensor qkv = Linear(block.Attention[0], y);
            q = s.View(Operand.Take(Blocks.Slice(s, qkv, a * d)), [b, a, n, d]);
            k = s.View(Operand.Take(Blocks.Slice(s, qkv, kv * d)), [b, kv, n, d]);
            v = s.View(Operand.Take(Blocks.Slice(s, qkv, kv * d)), [b, kv, n, d]);
            qkv.Release();
        }
        else
        {
            q = s.View(Operand.Take(Linear(block.Attention[0], y)), [b, a, n, d]);
            k = s.View(Operand.Take(Linear(block.Attention[1], y)), [b, kv, n, d]);
            v = s.View(Operand.Take(Linear(block.Attention[2], y)), [b, kv, n, d]);
        }

        if (!keepInput)
        {
            y.Release();
        }

        bool concatenated = false;
        if (rope is { } r && (r.Cos.Shape[^1] < d || _style.ConcatenatedRotary))
        {
            // GPT-NeoX apply_rotary_pos_emb: q_rot, q_pass = q[..., :rotary_dim], q[..., rotary_dim:]; the rotated part (fp32
            // when the tables are, as under autocast) is concatenated back with the pass-through views: torch.cat promotes,
            // so the result is a new [b, a, s, d] tensor in the rotated part's type, laid out heads-major.
            q = Blocks.Rebind(q, PartialRope(q, r));
            k = Blocks.Rebind(k, PartialRope(k, r));
            concatenated = true;
        }
        else if (rope is { } full)
        {
            (Tensor qr, Tensor kr) = Blocks.ApplyRope(s, q, k, full.Cos, full.Sin);
            q = Blocks.Rebind(q, qr);
            k = Blocks.Rebind(k, kr);
        }

        if (cache is not null)
        {
            (Tensor keys, Tensor values) = cache.Update(s, s.Layer, k, v);
            k = Blocks.Rebind(k, keys);
            v = Blocks.Rebind(v, values);
        }

        int repeats = (int)(a / kv);
        Tensor o;
        Tensor? probabilities = null;
        if (eager)
        {
            ScalarType valueType = v.Type;
            if (_style.Float32Scores)
            {
                // GPTJAttention._attn: query = query.to(torch.float32); key = key.to(torch.float32) ("keep the attention weights
                // computation in fp32"); the probabilities go back to value.dtype before the second matmul.
                q = Blocks.Rebind(q, s.To(q, ScalarType.Float32));
                k = Blocks.Rebind(k, s.To(k, ScalarType.Float32));
            }

            (Tensor output, probabilities) = Blocks.EagerAttention(s, q, k, v, mask, repeats, softmaxFloat32: !_style.SoftmaxInInputType,
                probabilitiesType: _style.Float32Scores ? valueType : null);
            Blocks.Release(q, k, v);
            o = s.ContiguousCopy(Operand.Take(s.View(Operand.Take(output), [b, n, a, d])));
        }
        else
        {
            // Falcon calls F.scaled_dot_product_attention itself, without enable_gqa: with k and v of fewer heads than q every
            // fused kernel refuses the call (sdp_utils_cpp.h check_batch_size_and_num_heads_dense: unequal heads pass only
            // when enable_gqa is set), so the math backend runs. Its new decoder architecture (ln_attn and ln_mlp: a parallel
            // block of two norms) broadcasts k and v to all heads in _split_heads, so SDPA gets equal heads there.
            bool unequalHeads = repeats > 1 && !(Model.ParallelBlock && block.Norms.Length > 1);
            bool math = _style.SdpaWithoutGqa && unequalHeads;
            bool float32 = q.Type == ScalarType.Float32 && s.Autocast is null;
            Tensor output = math ? Blocks.SdpaMath(s, q, k, v, repeats, enableGqa: false)
                : float32 ? Blocks.Float32Sdpa(s, q, k, v, null, repeats)
                : Blocks.SdpaAttention(s, q, k, v, null, repeats);
            Blocks.Release(q, k, v);
            o = s.View(Operand.Take(output), [b, n, a, d]);
            if (math || (concatenated && !float32))
            {
                // The output of SDPA keeps q's memory layout in the fused kernels (flash_api.cpp mha_fwd: out =
                // at::empty_like(q_padded); cuDNN: alloc_with_matching_layout(q, o, ...)) and is the [b, a, s, d] matmul result
                // on the math backend. Heads-major, so the caller's transpose(1, 2) is no longer contiguous and its
                // .contiguous() (integrations/sdpa_attention.py) or reshape (modeling_falcon.py) copies: the output
                // projection saves the copy, the kernel its own output.
                o = s.ContiguousCopy(Operand.Take(o));
            }
        }

        Tensor flat = s.View(Operand.Take(o), [b, n, a * d]);
        Tensor projected = Linear(block.Attention[^1], flat);
        flat.Release();
        return (projected, probabilities);
    }

    /// <summary>
    /// GPT-2's <c>resid_dropout</c> (attention) and <c>dropout</c> (MLP) after each output projection (GPT-J's alike, OPT's
    /// <c>nn.functional.dropout(p=config.dropout)</c> in the same places), in training only:
    /// <c>native_dropout</c> keeps a bool mask for backward (ATen skips p = 0: no kernel, no mask).
    /// </summary>
    private Tensor ResidualDropout(Tensor x) =>
        _training && Model.ResidualDropout > 0 ? Blocks.Rebind(x, Engine.Dropout(x)) : x;

    private bool _training;

    private Tensor LayerNorm(Tensor x, (string Weight, string Bias) norm) => Blocks.LayerNorm(Engine, x, Weights[norm.Weight], Weights[norm.Bias]);

    private Tensor PartialRope(Tensor x, (Tensor Cos, Tensor Sin) rope)
    {
        ReplayEngine s = Engine;
        long rotary = rope.Cos.Shape[^1];
        Tensor rot = Blocks.Slice(s, x, rotary);
        Tensor pass = Blocks.Slice(s, x, x.Shape[^1] - rotary);
        Tensor rotated = Blocks.Rope(s, rot, rope.Cos, rope.Sin);
        Tensor y = s.Cat([rotated, pass], [.. x.Shape[..^1], x.Shape[^1]]);
        Blocks.Release(rot, pass, rotated);
        return y;
    }

    private (Tensor Cos, Tensor Sin) RotaryTables(Tensor x, long n)
    {
        ReplayEngine s = Engine;
        long d = Model.RotaryDimension ?? Model.HeadDimension;
        Tensor cos = s.To(Operand.Take(s.Empty([1, n, d], ScalarType.Float32)), x.Type);
        Tensor sin = s.To(Operand.Take(s.Empty([1, n, d], ScalarType.Float32)), x.Type);
        return (s.View(Operand.Take(cos), [1, 1, n, d]), s.View(Operand.Take(sin), [1, 1, n, d]));
    }

    private static (string Weight, string Bias)[] Norms(IEnumerable<TensorSpec> norms) =>
        [.. norms.Where(t => t.Name.EndsWith(".weight", StringComparison.Ordinal))
            .Select(t => (t.Name, string.Concat(t.Name.AsSpan(0, t.Name.Length - ".weight".Length), ".bias")))];

    /// <summary>The checkpoint names of one block's tensors: attention linears (fused qkv + out, or q, k, v + out), MLP in and out, norms.</summary>
    private sealed record Block(string[] Attention, string[] FeedForward, (string Weight, string Bias)[] Norms);
}

/// <summary>Where the LayerNorm decoder families differ (transformers modeling files of each).</summary>
/// <param name="Rotary">Rotary positions on q and k (GPT-NeoX, GPT-J, Falcon).</param>
/// <param name="CompositeGelu">NewGELU written as separate ops (GPT-2, GPT-J <c>gelu_new</c>).</param>
/// <param name="SoftmaxInInputType">GPT-2's eager softmax runs in the scores' type rather than fp32.</param>
/// <param name="AlwaysEager">
/// No SDPA path: BLOOM adds its ALiBi bias to materialised scores; GPT-J's attention classes are eager and flash_attention_2
/// only (modeling_gptj.py <c>GPTJ_ATTENTION_CLASSES</c>), so transformers' default for it is eager.
/// </param>
/// <param name="Float32Scores">GPT-J computes the scores and softmax on fp32 copies of q and k.</param>
/// <param name="ConcatenatedRotary">
/// q and k leave the rotary embedding through <c>torch.cat</c> even when every dimension rotates (modeling_gpt_neox.py
/// <c>apply_rotary_pos_emb</c>: <c>torch.cat([q_embed, q_pass], dim=-1)</c>): new tensors, laid out heads-major.
/// </param>
/// <param name="SdpaWithoutGqa">
/// The modeling file calls <c>F.scaled_dot_product_attention</c> itself without <c>enable_gqa</c>, whatever its k and v
/// heads (modeling_falcon.py <c>FalconAttention.forward</c>: multi-query k and v of one head); the other families reach SDPA
/// through transformers' <c>sdpa_attention_forward</c>, which passes <c>enable_gqa</c> or repeats k and v.
/// </param>
internal sealed record ClassicStyle(bool Rotary, bool CompositeGelu, bool SoftmaxInInputType, bool AlwaysEager, bool Float32Scores,
    bool ConcatenatedRotary, bool SdpaWithoutGqa)
{
    public static ClassicStyle Of(ModelArchitecture model)
    {
        ArgumentNullException.ThrowIfNull(model);
        return new ClassicStyle(
            Rotary: model.Family is ModelFamily.GptNeoX or ModelFamily.GptJ or ModelFamily.Falcon,
            CompositeGelu: model.ModelType is "gpt2" or "gptj",
            SoftmaxInInputType: model.ModelType == "gpt2",
            AlwaysEager: model.Family is ModelFamily.Bloom or ModelFamily.GptJ,
            Float32Scores: model.Family == ModelFamily.GptJ,
            ConcatenatedRotary: model.Family == ModelFamily.GptNeoX,
            SdpaWithoutGqa: model.Family == ModelFamily.Falcon);
    }
}
