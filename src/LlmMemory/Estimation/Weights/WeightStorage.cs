using LlmMemory.Estimation.LlamaCpp;
using LlmMemory.Models;
using LlmMemory.Numerics;

namespace LlmMemory.Estimation.Weights;

/// <summary>Stored bytes of every weight tensor in a given format (docs/memory-model.md §1): one rule per scheme.</summary>
/// <remarks>
/// Quantization schemes replace only the weights of linear layers; embeddings, the output head, norms and biases stay in
/// 16-bit (the unquantized type), which is why "4-bit = 0.5 B/param" under-estimates (§9.1).
/// </remarks>
internal static class WeightStorage
{
    /// <summary>bitsandbytes 4-bit block size (<c>bnb_4bit_blocksize</c> default 64) and the second-level block of double quantization (256).</summary>
    private const int Bnb4Block = 64;
    private const int Bnb4DoubleBlock = 256;

    /// <summary>GPTQ/AWQ group size when the config does not give one: 128, the default of AutoGPTQ, AutoAWQ and most published checkpoints.</summary>
    private const int DefaultGroupSize = 128;

    /// <summary>Block of DeepSeek-style fp8 scales (<c>weight_block_size</c> [128, 128]).</summary>
    private const int Fp8ScaleBlock = 128;

    /// <summary>The bytes a weights file holds for each tensor, from the types it stores (safetensors or GGUF headers).</summary>
    /// <remarks>
    /// Stored non-parameters (quantization scales, zero points, rope tables: <see cref="TensorInventory.Buffers"/>) add their
    /// bytes to the parameter of the same block and module ("INT4 + scales"), or stand alone as "buffers", so the layout's
    /// bytes are the file's tensor bytes exactly.
    /// </remarks>
    public static WeightLayout AsStored(ModelArchitecture model)
    {
        ArgumentNullException.ThrowIfNull(model);
        return Computed.GetOrCreateValue(model).GetOrAdd(("as stored", ""), _ => Stored(model));
    }

    private static WeightLayout Stored(ModelArchitecture model)
    {
        var extra = model.Tensors.Buffers.GroupBy(b => (b.Layer, b.Module)).ToDictionary(g => g.Key, g => g.Sum(b => Bytes(b)));
        var stored = new List<StoredTensor>();
        foreach (TensorSpec t in model.Tensors.Tensors)
        {
            long bytes = Bytes(t);
            stored.Add(extra.Remove((t.Layer, t.Module), out long scales)
                ? new StoredTensor(t, checked(bytes + scales), $"{t.Stored!.Name} + scales")
                : new StoredTensor(t, bytes, t.Stored!.Name));
        }

        stored.AddRange(model.Tensors.Buffers.Where(b => extra.ContainsKey((b.Layer, b.Module))).Select(b => new StoredTensor(b with { Shape = [0] }, Bytes(b), "buffers")));
        return new WeightLayout(stored);

        static long Bytes(TensorSpec t) => t.Stored is DataType type ? type.BytesFor(t.Elements)
            : throw new InvalidOperationException($"{t.Name} has no stored type.");
    }

    /// <summary>Layouts already computed, per model instance and (format, unquantized type): solvers ask for the same one many times.</summary>
    private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<ModelArchitecture,
        System.Collections.Concurrent.ConcurrentDictionary<(string Format, string Unquantized), WeightLayout>> Computed = new();

    public static WeightLayout Layout(ModelArchitecture model, WeightFormat format, DataType unquantized)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(format);
        ArgumentNullException.ThrowIfNull(unquantized);
        return Computed.GetOrCreateValue(model).GetOrAdd((format.Name, unquantized.Name), _ => Compute(model, format, unquantized));
    }

    private static WeightLayout Compute(ModelArchitecture model, WeightFormat format, DataType unquantized)
    {
        if (format.Scheme is WeightScheme.GgufType or WeightScheme.GgufMix)
        {
            return Gguf(model, format);
        }

        return new WeightLayout(model.Tensors.Tensors.Select(t => Store(model, t, format, unquantized)).ToArray());
    }

    /// <summary>
    /// A llama.cpp file type: each tensor of the GGUF that <c>convert_hf_to_gguf.py</c> would write, typed by llama-quant.cpp's
    /// rules (<see cref="QuantRules"/>, the one implementation the llama.cpp estimator uses too).
    /// </summary>
    private static WeightLayout Gguf(ModelArchitecture model, WeightFormat format)
    {
        IReadOnlyList<GgufTensor> tensors = GgufTensorList.Of(model);
        IReadOnlyDictionary<string, DataType> types = QuantRules.TypesOf(tensors, LlamaCppArch.Of(model), GgufFileType.From(format));
        return new WeightLayout(tensors.Where(t => t.Source is not null)
            .Select(t => new StoredTensor(t.Source!, t.BytesIn(types[t.Name]), types[t.Name].Name))
            .ToArray());
    }

    private static StoredTensor Store(ModelArchitecture model, TensorSpec t, WeightFormat format, DataType unquantized)
    {
        if (format.Scheme == WeightScheme.Dense)
        {
            return Plain(t, format.Type);
        }

        bool linear = IsQuantizableLinear(model, t, format);
        if (!linear)
        {
            return Plain(t, unquantized);
        }

        long n = t.Elements;
        long rows = t.Shape.Length == 3 ? t.Shape[0] * t.Shape[1] : t.OutFeatures;
        long k = t.InFeatures;
        return format.Scheme switch
        {
            WeightScheme.Fp8 => Fp8(model, t, rows, k),
            // LLM.int8: int8 codes CB [out, in] + fp32 row absmax SCB [out] (§1.2).
            WeightScheme.BitsAndBytes8 => new StoredTensor(t, checked(n + 4 * rows), "int8 + fp32 row scales"),
            WeightScheme.BitsAndBytes4 => Bnb4(t, n, format.Type == DataTypes.NF4),
            WeightScheme.Gptq => Gptq(model, t, rows, k, withIndex: true),
            WeightScheme.Awq => Gptq(model, t, rows, k, withIndex: false),
            // OCP MXFP4: 16 B of E2M1 codes + one E8M0 scale per 32 weights = 17 B / 32 (ggml MXFP4, §1.1).
            WeightScheme.Mxfp4 => new StoredTensor(t, DataTypes.MXFP4.BytesFor(n), "MXFP4"),
            _ => throw new InvalidOperationException($"No storage rule for {format.Scheme}."),
        };
    }

    /// <summary>
    /// Which tensors a scheme quantizes: the weights of linear layers (bitsandbytes, GPTQ, AWQ, fp8 checkpoints), never the
    /// output head, embeddings, norms or biases; MXFP4 only the routed-expert matrices (gpt-oss <c>modules_to_not_convert</c>).
    /// </summary>
    private static bool IsQuantizableLinear(ModelArchitecture model, TensorSpec t, WeightFormat format)
    {
        if (format.Scheme == WeightScheme.Mxfp4)
        {
            return t.Role == TensorRole.Expert && t.Form is TensorForm.FusedExperts or TensorForm.ExpertLinear;
        }

        if (t.Role is TensorRole.OutputHead or TensorRole.TokenEmbedding || t.Form is not (TensorForm.LinearWeight or TensorForm.ExpertLinear))
        {
            return false;
        }

        IReadOnlyList<string> keep = model.Quantization?.NotConverted ?? [];
        return !keep.Any(pattern => Matches(t.Name, pattern));
    }

    /// <summary>
    /// A tensor stored as bitsandbytes 4-bit in <paramref name="format"/>, whatever its role: with double quantization as the
    /// format has it (nf4 with, fp4 without) unless <paramref name="doubleQuantized"/> says otherwise.
    /// </summary>
    public static StoredTensor FourBit(TensorSpec t, WeightFormat format, bool? doubleQuantized = null)
    {
        ArgumentNullException.ThrowIfNull(t);
        ArgumentNullException.ThrowIfNull(format);
        return format.Scheme == WeightScheme.BitsAndBytes4 ? Bnb4(t, t.Elements, doubleQuantized ?? format.Type == DataTypes.NF4, format.Type == DataTypes.NF4)
            : throw new ArgumentException($"{format.Name} is not a bitsandbytes 4-bit format.", nameof(format));
    }

    private static StoredTensor Plain(TensorSpec t, DataType type) => new(t, type.BytesFor(t.Elements), type.Name.ToLowerInvariant());

    /// <summary>
    /// bitsandbytes 4-bit (§1.3): n/2 bytes of codes; absmax per block of 64 as fp32 (4.5 bits/param), or with double
    /// quantization as 8-bit per block plus fp32 per 256 blocks and one fp32 offset (QLoRA paper: 4.127 bits/param).
    /// </summary>
    private static StoredTensor Bnb4(TensorSpec t, long n, bool doubleQuantized, bool nf4 = true)
    {
        long blocks = CeilDiv(n, Bnb4Block);
        long codes = CeilDiv(n, 2);
        long quantState = doubleQuantized ? checked(blocks + 4 * CeilDiv(blocks, Bnb4DoubleBlock) + 4) : checked(4 * blocks);
        return new StoredTensor(t, checked(codes + quantState), doubleQuantized ? nf4 ? "NF4+DQ" : "FP4+DQ" : "4-bit + fp32 absmax", quantState);
    }

    /// <summary>
    /// GPTQ / AWQ (§1.4), K = in, N = out, b bits, g group: codes K·N·b/8, zeros ⌈K/g⌉·N·b/8, fp16 scales 2·⌈K/g⌉·N,
    /// and for GPTQ an int32 g_idx of K.
    /// </summary>
    private static StoredTensor Gptq(ModelArchitecture model, TensorSpec t, long rows, long k, bool withIndex)
    {
        int bits = model.Quantization?.Bits ?? 4;
        long group = model.Quantization?.GroupSize is int g && g > 0 ? g : model.Quantization?.GroupSize == -1 ? k : DefaultGroupSize;
        long groups = CeilDiv(k, group);
        long bytes = checked((k * rows * bits / 8) + (groups * rows * bits / 8) + (2 * groups * rows) + (withIndex ? 4 * k * (t.Shape.Length == 3 ? t.Shape[0] : 1) : 0));
        return new StoredTensor(t, bytes, $"{(withIndex ? "GPTQ" : "AWQ")} int{bits} g{group}");
    }

    /// <summary>
    /// fp8 (§1.1): one byte per weight plus fp32 scales, per 128×128 block when the config gives <c>weight_block_size</c>
    /// (DeepSeek-V3, Qwen3-FP8), else one per output row (FP8-dynamic checkpoints).
    /// </summary>
    private static StoredTensor Fp8(ModelArchitecture model, TensorSpec t, long rows, long k)
    {
        IReadOnlyList<int> block = model.Quantization?.BlockSize ?? [];
        long experts = t.Shape.Length == 3 ? t.Shape[0] : 1;
        long outPerExpert = rows / experts;
        long scales = block.Count == 2
            ? experts * CeilDiv(outPerExpert, block[0]) * CeilDiv(k, block[1])
            : rows;
        return new StoredTensor(t, checked(t.Elements + 4 * scales), block.Count == 2 ? $"fp8, an fp32 scale per {block[0]}-by-{block[1]} block" : "fp8, an fp32 scale per row");
    }

    /// <summary>
    /// A <c>modules_to_not_convert</c> / <c>ignored_layers</c> entry names a module: it matches a tensor of that module or
    /// of a module inside it, i.e. a tensor name containing the entry followed by a dot, as transformers tests it
    /// (integrations/fbgemm_fp8.py <c>_replace_with_fbgemm_fp8_linear</c>: <c>key + "." in current_key_name_str</c>), so
    /// "model.layers.1" keeps layer 1 and not layers 10–19; <c>*</c> (gpt-oss's "model.layers.*.self_attn") matches any run
    /// of characters.
    /// </summary>
    private static bool Matches(string name, string pattern) =>
        System.Text.RegularExpressions.Regex.IsMatch(name,
            System.Text.RegularExpressions.Regex.Escape(pattern).Replace(@"\*", ".*", StringComparison.Ordinal) + @"\.",
            System.Text.RegularExpressions.RegexOptions.None, TimeSpan.FromMilliseconds(100));

    private static long CeilDiv(long a, long b) => (a + b - 1) / b;
}
