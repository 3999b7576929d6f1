namespace LlmMemory.Estimation.Replay;

/// <summary>
/// The ATen ops the programs use. Each allocates its output like the CUDA kernel does and records what its derivative
/// formula saves (<c>tools/autograd/derivatives.yaml</c>): <c>mul</c> saves the other operand of an input that needs a
/// gradient, <c>silu</c>/<c>gelu</c>/<c>pow</c> their input, <c>tanh</c>/<c>rsqrt</c>/<c>softmax</c> their output,
/// <c>mm</c> its input when the weight needs a gradient and the weight when the input does; adds, views, casts and
/// <c>cat</c> save nothing. Every op returns a new reference.
/// </summary>
internal sealed partial class ReplayEngine
{
    public Tensor View(Operand x, long[] shape)
    {
        Tensor y = x.Tensor.Alias(shape);
        if (x.Tensor.RequiresGrad && GradEnabled)
        {
            Record(y, [x.Tensor], [], Derivatives.View);
        }

        x.Done();
        return y;
    }

    /// <summary><c>x.to(type)</c>: the tensor itself when it already has the type, else a copy.</summary>
    public Tensor To(Operand x, ScalarType type)
    {
        if (x.Tensor.Type == type)
        {
            return x.Owned ? x.Tensor : x.Tensor.Retain();
        }

        Tensor y = Empty(x.Tensor.Shape, type);
        Record(y, [x.Tensor], [], Derivatives.ToCopy);
        x.Done();
        return y;
    }

    public Tensor ContiguousCopy(Operand x)
    {
        Tensor y = Empty(x.Tensor.Shape, x.Tensor.Type);
        Record(y, [x.Tensor], [], Derivatives.Same);
        x.Done();
        return y;
    }

    /// <summary><c>F.linear</c> (<c>mm</c>/<c>addmm</c> over the 2-D view of x); W is [out, in].</summary>
    public Tensor Linear(Operand x, Tensor weight, Tensor? bias = null)
    {
        NeedWorkspace();
        Tensor input = Cast(x.Tensor);
        x.Done(); // autocast rebinds the argument to its cast
        Tensor w = Cast(weight);
        Tensor? b = bias is null ? null : Cast(bias);
        Tensor y = Empty(input.WithLast(w.Shape[0]), ScalarTypes.Promote(input.Type, w.Type));
        Record(y, [input, w, b], [w.RequiresGrad ? input : null, input.RequiresGrad ? w : null], Derivatives.Linear);
        input.Release();
        w.Release();
        b?.Release();
        return y;
    }

    /// <summary>
    /// <c>torch.matmul</c> of 4-D operands (a <c>bmm</c> over batch × heads). <paramref name="copyA"/>,
    /// <paramref name="copyB"/>: the operand is a permuted view whose 3-D reshape cannot be a view, so matmul copies it
    /// and the bmm saves the copy.
    /// </summary>
    public Tensor Matmul(Operand a, Operand b, long[] shape, bool copyA = false, bool copyB = false)
    {
        NeedWorkspace();
        Tensor left = Cast(a.Tensor);
        a.Done();
        Tensor right = Cast(b.Tensor);
        b.Done();
        if (copyA)
        {
            left = Blocks.Rebind(left, ContiguousCopy(left));
        }

        if (copyB)
        {
            right = Blocks.Rebind(right, ContiguousCopy(right));
        }

        Tensor y = Empty(shape, ScalarTypes.Promote(left.Type, right.Type));
        Record(y, [left, right], [right.RequiresGrad ? left : null, left.RequiresGrad ? right : null], Derivatives.Bmm);
        left.Release();
        right.Release();
        return y;
    }

    public Tensor Unary(Operand x, UnaryKind kind, ScalarType? type = null)
    {
        if (Autocast is not null && kind.RunsInFloat32UnderAutocast() && x.Tensor.Type is ScalarType.BFloat16 or ScalarType.Float16)
        {
            // autocast's fp32 policy (aten/src/ATen/autocast_mode.h, AT_FORALL_FP32: pow, rsqrt, …): the op gets an fp32
            // copy of a 16-bit input (never cached: the cache holds lower-precision casts of leaves only), computes and
            // returns fp32, and its backward keeps the copy where it saves the input.
            return Unary(Operand.Take(To(x, ScalarType.Float32)), kind, type);
        }

        Tensor y = Empty(x.Tensor.Shape, type ?? x.Tensor.Type);
        Tensor? savedOutput = kind.SavesOutput() ? y.Alias() : null;
        Record(y, [x.Tensor], [kind.SavesInput() ? x.Tensor : savedOutput], Derivatives.Unary(kind));
        savedOutput?.Release();
        x.Done();
        return y;
    }

    /// <summary>Multiplication or division by a Python scalar: a new tensor, nothing saved.</summary>
    public Tensor Scale(Operand x) => Unary(x, UnaryKind.Scale);

    public Tensor AddScalar(Operand x) => Unary(x, UnaryKind.AddScalar);

    public Tensor Binary(Operand a, Operand b, BinaryKind kind, ScalarType? type = null)
    {
        Tensor left = a.Tensor;
        Tensor right = b.Tensor;
        Tensor y = Empty(Broadcast(left.Shape, right.Shape), type ?? ScalarTypes.Promote(left.Type, right.Type));
        bool product = kind is BinaryKind.Mul or BinaryKind.Div;
        Record(y, [left, right],
            [product && right.RequiresGrad ? left : null, product && (left.RequiresGrad || (kind == BinaryKind.Div && right.RequiresGrad)) ? right : null],
            Derivatives.Binary(kind));
        a.Done();
        b.Done();
        return y;
    }

    public Tensor Mul(Operand a, Operand b) => Binary(a, b, BinaryKind.Mul);

    /// <summary><c>target += other</c>: no new memory; the autograd history of <paramref name="target"/> now ends in the add.</summary>
    public void AddInPlace(Tensor target, Operand other)
    {
        ArgumentNullException.ThrowIfNull(target);
        GradNode? history = target.Fn;
        Record(target, [target, other.Tensor], [], Derivatives.Binary(BinaryKind.Add));
        if (!ReferenceEquals(history, target.Fn))
        {
            history?.Release();
        }

        other.Done();
    }

    /// <summary>
    /// <c>F.dropout</c> in training (<c>native_dropout</c>): the output and a bool mask, which backward keeps
    /// (<c>native_dropout_backward(grad, mask, scale)</c>).
    /// </summary>
    public Tensor Dropout(Operand x)
    {
        Tensor y = Empty(x.Tensor.Shape, x.Tensor.Type);
        Tensor mask = Empty(x.Tensor.Shape, ScalarType.Bool);
        Record(y, [x.Tensor], [mask], Derivatives.ShapeOfInput);
        mask.Release();
        x.Done();
        return y;
    }

    public Tensor Add(Operand a, Operand b) => Binary(a, b, BinaryKind.Add);

    /// <summary>A mean or sum over a dimension: saves nothing but shapes.</summary>
    public Tensor Reduce(Operand x, long[] shape, ScalarType? type = null)
    {
        Tensor y = Empty(shape, type ?? x.Tensor.Type);
        Record(y, [x.Tensor], [], Derivatives.Expand);
        x.Done();
        return y;
    }

    /// <summary>
    /// <c>torch.cat</c>: the output type is promoted over all inputs (cat's meta function, aten TensorShape.cpp:
    /// <c>out_dtype = at::native::result_type(tensors)</c>), including an empty 1-D input that cat otherwise skips, whose type
    /// <paramref name="skipped"/> gives (transformers' <c>DynamicLayer</c> concatenates onto one).
    /// </summary>
    public Tensor Cat(Tensor[] inputs, long[] shape, ScalarType? skipped = null)
    {
        ScalarType type = inputs.Aggregate(skipped ?? inputs[0].Type, (t, x) => ScalarTypes.Promote(t, x.Type));
        Tensor y = Empty(shape, type);
        Record(y, inputs, [], Derivatives.Cat);
        return y;
    }

    public Tensor Embedding(Tensor ids, Tensor weight)
    {
        Tensor y = Empty([.. ids.Shape, weight.Shape[1]], weight.Type);
        Record(y, [weight], [ids], Derivatives.Embedding(ids.Elements));
        return y;
    }

    /// <summary>
    /// <c>F.softmax(x, dim=-1, dtype=type)</c>: <c>x.to(type)</c> then <c>_softmax</c>; the fused half-to-float kernel exists
    /// only for fp16 input on CUDA.
    /// </summary>
    public Tensor Softmax(Operand x, ScalarType type = ScalarType.Float32)
    {
        if (x.Tensor.Type == ScalarType.Float16 && type == ScalarType.Float32)
        {
            Tensor direct = Empty(x.Tensor.Shape, type);
            SaveOwnOutput(direct, x.Tensor, Derivatives.LikeInput);
            x.Done();
            return direct;
        }

        Tensor converted = To(x.Tensor, type);
        Tensor y = Empty(converted.Shape, type);
        SaveOwnOutput(y, converted, Derivatives.LikeInput);
        converted.Release();
        x.Done();
        return y;
    }

    public Tensor LogSoftmax(Operand x)
    {
        Tensor y = Empty(x.Tensor.Shape, x.Tensor.Type);
        SaveOwnOutput(y, x.Tensor, Derivatives.LikeInput);
        x.Done();
        return y;
    }

    public Tensor NllLoss(Tensor logProbabilities, Tensor target)
    {
        Tensor y = Empty([], ScalarType.Float32);
        Record(y, [logProbabilities], [logProbabilities, target], Derivatives.LikeInput);
        return y;
    }

    /// <summary>
    /// <c>_scaled_dot_product_flash_attention</c>, q [b, a, s, d], k and v [b, n_kv, s, d] (native GQA): saves q, k, v, the
    /// output and the fp32 log-sum-exp [b, a, s].
    /// </summary>
    public Tensor SdpaFlash(Operand q, Operand k, Operand v, int groups)
    {
        (Tensor query, Tensor key, Tensor value) = (Cast(q.Tensor), Cast(k.Tensor), Cast(v.Tensor));
        Done(q, k, v);
        long[] s = query.Shape;
        Tensor output = Empty(s, query.Type);
        Tensor logSumExp = Empty([s[0], s[1], s[2]], ScalarType.Float32);
        Tensor alias = output.Alias();
        Record(output, [query, key, value], [query, key, value, alias, logSumExp], Derivatives.FlashAttention(groups));
        Release(alias, logSumExp, query, key, value);
        return output;
    }

    /// <summary>
    /// <c>_scaled_dot_product_efficient_attention</c> with an additive bias: saves q, k, v, the bias, the output and the
    /// log-sum-exp [b, a, s rounded up to 32].
    /// </summary>
    public Tensor SdpaEfficient(Operand q, Operand k, Operand v, Tensor? bias)
    {
        (Tensor query, Tensor key, Tensor value) = (Cast(q.Tensor), Cast(k.Tensor), Cast(v.Tensor));
        Done(q, k, v);
        long[] s = query.Shape;
        Tensor output = Empty(s, query.Type);
        Tensor logSumExp = Empty([s[0], s[1], (s[2] + 31) / 32 * 32], ScalarType.Float32);
        Tensor alias = output.Alias();
        Record(output, [query, key, value], [query, key, value, bias, alias, logSumExp], Derivatives.FlashAttention(1));
        Release(alias, logSumExp, query, key, value);
        return output;
    }

    /// <summary>An op whose backward needs only its own output (softmax, log-softmax), and its input where <see cref="SoftmaxSavesInput"/>.</summary>
    private void SaveOwnOutput(Tensor output, Tensor input, BackwardFormula formula)
    {
        Tensor alias = output.Alias();
        Record(output, [input], [alias, SoftmaxSavesInput ? input : null], formula);
        alias.Release();
    }

    /// <summary>autocast's cast of an op input; casts of leaf weights that require grad are cached for the region.</summary>
    private Tensor Cast(Tensor x)
    {
        if (Autocast is not ScalarType type || x.Type == type || !x.Type.IsFloatingPoint())
        {
            return x.Retain();
        }

        if (!(x.IsParameter && x.RequiresGrad))
        {
            return To(x, type);
        }

        if (!_autocastCache.TryGetValue(x, out Tensor? cast))
        {
            MemoryTag tag = Tag;
            Tag = MemoryTag.AutocastWeight;
            cast = To(x, type);
            Tag = tag;
            _autocastCache[x] = cast;
        }

        return cast.Retain();
    }

    private static long[] Broadcast(long[] a, long[] b)
    {
        int n = Math.Max(a.Length, b.Length);
        var shape = new long[n];
        for (int i = 0; i < n; i++)
        {
            long x = i - (n - a.Length) >= 0 ? a[i - (n - a.Length)] : 1;
            long y = i - (n - b.Length) >= 0 ? b[i - (n - b.Length)] : 1;
            shape[i] = x == 1 ? y : y == 1 || x == y ? x : throw new InvalidOperationException($"cannot broadcast [{string.Join(",", a)}] and [{string.Join(",", b)}]");
        }

        return shape;
    }

    private static void Release(params Tensor[] tensors)
    {
        foreach (Tensor t in tensors)
        {
            t.Release();
        }
    }

    private static void Done(params Operand[] operands)
    {
        foreach (Operand o in operands)
        {
            o.Done();
        }
    }
}

/// <summary>Elementwise unary ops, by what their backward keeps.</summary>
internal enum UnaryKind
{
    Silu,
    Gelu,

    /// <summary><c>relu</c>: its backward reads the output (<c>threshold_backward(grad, result, 0)</c>).</summary>
    Relu,

    /// <summary><c>pow</c> (x², x³): saves its input; its backward makes two temporaries of the input's size.</summary>
    Pow,
    Tanh,
    Rsqrt,
    Neg,

    /// <summary>Multiplication or division by a Python scalar.</summary>
    Scale,

    /// <summary>Addition of a Python scalar: the gradient passes through.</summary>
    AddScalar,
}

internal static class UnaryKinds
{
    public static bool SavesInput(this UnaryKind kind) => kind is UnaryKind.Silu or UnaryKind.Gelu or UnaryKind.Pow;

    public static bool SavesOutput(this UnaryKind kind) => kind is UnaryKind.Tanh or UnaryKind.Rsqrt or UnaryKind.Relu;

    /// <summary>In autocast's fp32 list (aten/src/ATen/autocast_mode.h <c>AT_FORALL_FP32</c>): <c>pow</c> and <c>rsqrt</c>.</summary>
    public static bool RunsInFloat32UnderAutocast(this UnaryKind kind) => kind is UnaryKind.Pow or UnaryKind.Rsqrt;
}

internal enum BinaryKind
{
    Add,
    Mul,
    Div,
}
