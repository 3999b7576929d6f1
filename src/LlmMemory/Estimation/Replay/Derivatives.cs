namespace LlmMemory.Estimation.Replay;

/// <summary>
/// The backward formulas: the gradients each one allocates, in the order the generated autograd code allocates them
/// (first input first), and the temporaries it makes on the way. Each returns one new reference per edge.
/// </summary>
internal static class Derivatives
{
    private static readonly Dictionary<UnaryKind, BackwardFormula> Unaries = Enum.GetValues<UnaryKind>().ToDictionary(k => k, UnaryFormula);
    private static readonly Dictionary<BinaryKind, BackwardFormula> Binaries = Enum.GetValues<BinaryKind>().ToDictionary(k => k, BinaryFormula);

    /// <summary>A view: the gradient is a view of the incoming one.</summary>
    public static Tensor?[] View(ReplayEngine engine, GradNode node, Tensor? g) => [g?.Alias(Meta(node, 0).Shape)];

    /// <summary>A copy of the same type (<c>clone</c>): the gradient passes through.</summary>
    public static Tensor?[] Same(ReplayEngine engine, GradNode node, Tensor? g) => [g?.Retain()];

    /// <summary><c>_to_copy</c>: the gradient cast back to the input type (the same tensor when the types match).</summary>
    public static Tensor?[] ToCopy(ReplayEngine engine, GradNode node, Tensor? g)
    {
        TensorMeta input = Meta(node, 0);
        return [g is null ? null : input.Type == g.Type ? g.Retain() : engine.Empty(input.Shape, input.Type)];
    }

    /// <summary><c>mm</c>: grad_input, grad_weight and grad_bias where they are needed.</summary>
    public static Tensor?[] Linear(ReplayEngine engine, GradNode node, Tensor? g)
    {
        engine.NeedWorkspace();
        var grads = new Tensor?[node.Edges.Length];
        for (int i = 0; i < grads.Length; i++)
        {
            grads[i] = node.Edges[i] is null ? null : engine.Empty(Meta(node, i).Shape, g!.Type);
        }

        return grads;
    }

    public static Tensor?[] Bmm(ReplayEngine engine, GradNode node, Tensor? g) => Linear(engine, node, g);

    /// <summary>A reduction's gradient: expanded back to the input's shape.</summary>
    public static Tensor?[] Expand(ReplayEngine engine, GradNode node, Tensor? g) => [engine.Empty(Meta(node, 0).Shape, g!.Type)];

    /// <summary>Ops whose gradient is a new tensor of the input's shape and type (softmax, log-softmax, nll_loss, fused CE).</summary>
    public static Tensor?[] LikeInput(ReplayEngine engine, GradNode node, Tensor? g) => [engine.Empty(Meta(node, 0).Shape, Meta(node, 0).Type)];

    /// <summary>
    /// Kernels whose backward hands on gradients they keep as saved tensors, in input order (Unsloth's loss writes the
    /// logits' gradient into the saved logits; Liger's fused linear cross-entropy computes its inputs' gradients in the forward):
    /// nothing is allocated.
    /// </summary>
    public static Tensor?[] IntoSaved(ReplayEngine engine, GradNode node, Tensor? g)
    {
        var grads = new Tensor?[node.Edges.Length];
        for (int i = 0; i < grads.Length; i++)
        {
            grads[i] = node.Edges[i] is null ? null : node.Saved[i].Alias(Meta(node, i).Shape);
        }

        return grads;
    }

    /// <summary>Ops whose gradient is a new tensor of the input's shape in the gradient's type (slice, repeat_kv).</summary>
    public static Tensor?[] ShapeOfInput(ReplayEngine engine, GradNode node, Tensor? g) => [engine.Empty(Meta(node, 0).Shape, g!.Type)];

    /// <summary><c>cat</c>: each input's gradient is a view of the incoming one.</summary>
    public static Tensor?[] Cat(ReplayEngine engine, GradNode node, Tensor? g)
    {
        var grads = new Tensor?[node.Edges.Length];
        for (int i = 0; i < grads.Length; i++)
        {
            grads[i] = node.Edges[i] is not null && g is not null ? g.Alias(Meta(node, i).Shape) : null;
        }

        return grads;
    }

    /// <summary><c>native_layer_norm_backward</c>: a gradient of each input's shape and type.</summary>
    public static Tensor?[] LayerNorm(ReplayEngine engine, GradNode node, Tensor? g)
    {
        var grads = new Tensor?[node.Edges.Length];
        for (int i = 0; i < grads.Length; i++)
        {
            grads[i] = node.Edges[i] is null ? null : engine.Empty(Meta(node, i).Shape, Meta(node, i).Type);
        }

        return grads;
    }

    public static BackwardFormula Unary(UnaryKind kind) => Unaries[kind];

    public static BackwardFormula Binary(BinaryKind kind) => Binaries[kind];

    /// <summary>
    /// <c>embedding_dense_backward</c> on CUDA over <paramref name="tokens"/> indices: sorted indices and per-segment partial
    /// sums as temporaries, then the zeroed gradient table.
    /// </summary>
    public static BackwardFormula Embedding(long tokens) => (engine, node, g) =>
    {
        TensorMeta table = Meta(node, 0);
        Tensor indices = engine.Empty([4 * tokens], ScalarType.Int64);
        Tensor partial = engine.Empty([tokens, table.Shape[1]], ScalarType.Float32);
        Tensor grad = engine.Empty(table.Shape, g!.Type);
        partial.Release();
        indices.Release();
        return [grad];
    };

    /// <summary>
    /// <c>_flash_attention_backward</c> (FA2 in ATen): dq, dk, dv, softmax_d (fp32 [b, a, s rounded to 128]) and dq_accum
    /// (fp32 [b, s rounded to 128, a, d rounded to 32]); with GQA, dk and dv are computed at all heads, then summed.
    /// </summary>
    public static BackwardFormula FlashAttention(int groups) => (engine, node, g) =>
    {
        (TensorMeta q, TensorMeta k, TensorMeta v) = (Meta(node, 0), Meta(node, 1), Meta(node, 2));
        (long b, long a, long s, long d) = (q.Shape[0], q.Shape[1], q.Shape[2], q.Shape[3]);
        long s128 = (s + 127) / 128 * 128;
        Tensor?[] grads = [engine.Empty(q.Shape, q.Type), engine.Empty(k.Shape, k.Type), engine.Empty(v.Shape, v.Type)];
        Tensor softmaxD = engine.Empty([b, a, s128], ScalarType.Float32);
        Tensor accumulator = engine.Empty([b, s128, a, (d + 31) / 32 * 32], ScalarType.Float32);
        if (groups > 1)
        {
            Tensor expandedK = engine.Empty([b, a, s, d], k.Type);
            Tensor expandedV = engine.Empty([b, a, s, d], v.Type);
            expandedK.Release();
            expandedV.Release();
        }

        softmaxD.Release();
        accumulator.Release();
        for (int i = 0; i < grads.Length; i++)
        {
            grads[i] = Keep(grads[i]!, node.Edges[i] is not null);
        }

        return grads;
    };

    /// <summary>
    /// A 4-bit linear (bitsandbytes <c>MatMul4Bit.backward</c>, torchao NF4): the weight is dequantized again for grad_input,
    /// in the quant state's type and copied to the gradient's type when that differs (<c>dequantize_4bit(B).to(grad.dtype)</c>);
    /// the frozen base needs no weight gradient.
    /// </summary>
    public static BackwardFormula DequantizedLinear(long[] weightShape, ScalarType stored) => (engine, node, g) =>
    {
        Tensor weight = engine.Empty(weightShape, stored);
        if (stored != g!.Type)
        {
            weight = Blocks.Rebind(weight, engine.Empty(weightShape, g.Type));
        }

        Tensor grad = engine.Empty(Meta(node, 0).Shape, g.Type);
        weight.Release();
        return [grad];
    };

    private static BackwardFormula UnaryFormula(UnaryKind kind) => (engine, node, g) =>
    {
        TensorMeta input = Meta(node, 0);
        switch (kind)
        {
            case UnaryKind.Pow:
                // pow_backward: grad * (exponent * self.pow(exponent - 1)): two temporaries of the input's size.
                Tensor power = engine.Empty(input.Shape, input.Type);
                Tensor scaled = engine.Empty(input.Shape, input.Type);
                power.Release();
                Tensor grad = engine.Empty(input.Shape, input.Type);
                scaled.Release();
                return [grad];
            case UnaryKind.AddScalar:
                return [g!.Retain()];
            default:
                return [engine.Empty(input.Shape, input.Type)];
        }
    };

    private static BackwardFormula BinaryFormula(BinaryKind kind) => (engine, node, g) =>
    {
        var grads = new Tensor?[node.Edges.Length];
        for (int i = 0; i < grads.Length; i++)
        {
            if (node.Edges[i] is null)
            {
                continue;
            }

            if (kind == BinaryKind.Add)
            {
                grads[i] = SumTo(engine, g!, Meta(node, i));
            }
            else
            {
                // grad * other (mul) or grad / other (div), then reduced to the input's shape.
                Tensor product = engine.Empty(g!.Shape, g.Type);
                grads[i] = SumTo(engine, product, Meta(node, i));
                product.Release();
            }
        }

        return grads;
    };

    /// <summary>The gradient reduced (or cast) to an input's shape and type; the same tensor when both already match.</summary>
    private static Tensor SumTo(ReplayEngine engine, Tensor g, TensorMeta input) =>
        g.Type == input.Type && g.Shape.AsSpan().SequenceEqual(input.Shape) ? g.Retain() : engine.Empty(input.Shape, input.Type);

    private static Tensor? Keep(Tensor grad, bool needed)
    {
        if (needed)
        {
            return grad;
        }

        grad.Release();
        return null;
    }

    private static TensorMeta Meta(GradNode node, int index) =>
        node.Inputs[index] is { Shape: not null } meta ? meta : throw new InvalidOperationException($"node input {index} is not a tensor");
}
