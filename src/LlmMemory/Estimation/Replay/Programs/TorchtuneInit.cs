using LlmMemory.Models;

namespace LlmMemory.Estimation.Replay;

/// <summary>
/// How torchtune builds a model on the GPU before the first step, which leaves the allocator's cache holding what the
/// build freed. The single-device recipes instantiate the model under <c>self._device</c> in bf16, so each
/// <c>LoRALinear(quantize_base=True)</c> makes its <c>nn.Linear</c> bf16 weight on the GPU and keeps only
/// <c>to_nf4(linear.weight)</c>; then <c>model.load_state_dict</c> copies the CPU checkpoint into each parameter in place,
/// and torchao's <c>NF4Tensor</c> <c>copy_</c> quantizes the incoming tensor again
/// (<c>NF4Tensor.from_tensor(copy_in.to(original.device), ...)</c>, torchao/dtypes/nf4tensor.py) before copying its parts.
/// </summary>
/// <param name="ClonedLayers">
/// The builder made one layer and <c>TransformerDecoder</c> deep-copied it per layer (<c>_get_clones</c>, torchtune before
/// 0.6.0; torchtune/models/llama2/_component_builders.py of April 2024: <c>lora_llama2</c> builds <c>self_attn</c> — q, k,
/// v, output projections, then its own <c>RotaryPositionalEmbeddings</c> — the MLP and the norms once, then the embedding
/// and the head, and passes <c>layer=layer, num_layers=num_layers</c>). Every layer gets a copy of every tensor, the rotary
/// cache included; a copy of an <c>NF4Tensor</c> parameter is its <c>clone</c>, <c>to_nf4(self.get_original_weight())</c>;
/// the template layer is freed once the model is built.
/// </param>
/// <param name="Chunked">torchao from 0.2.0 quantizes 1024² elements at a time; torchao 0.1 quantizes the whole weight at once.</param>
internal sealed record TorchtuneInit(bool ClonedLayers, bool Chunked)
{
    /// <summary>torchao's <c>CHUNK_SIZE = 1024**2</c> (Note: Quantize in Chunks).</summary>
    private const long ChunkElements = 1L << 20;

    /// <summary>The NF4 code book, <c>torch.tensor([...16 values], device=device, dtype=input_tensor.dtype)</c>.</summary>
    private const int CodeBook = 16;

    /// <summary>
    /// <c>NF4Tensor.from_tensor</c> of a bf16 weight of <paramref name="n"/> elements on the device, op by op; the parameter
    /// (<paramref name="create"/>, its stored bytes) is made where <c>combined_blocks.to(torch.uint8)</c> makes the packed
    /// data, the last and largest of the parts the tensor keeps. Block 64, scaler block 256 (torchtune's <c>to_nf4</c> defaults).
    /// </summary>
    public Tensor FromTensor(ReplayEngine engine, long n, Func<Tensor> create)
    {
        ArgumentNullException.ThrowIfNull(engine);
        ArgumentNullException.ThrowIfNull(create);
        Tensor B(long bytes) => engine.Empty([bytes], ScalarType.UInt8, MemoryTag.Weight);
        long blocks = n / 64;

        // double_quantize_scalers(input_tensor.flatten(), 64, 256): get_block_absmax = blocks.abs().max(dim=1).values, the
        // mean subtracted, the absmax of each 256 scalers, quantization_factor = 256 / (2 * scaler_absmax) over the expanded
        // [n_scaler_blocks, 256] view, then scaler_blocks * factor, .round(), .clamp(-128, 127), .to(torch.int8).
        Tensor scalers = AbsMax(engine, 2 * n, blocks);
        Tensor centred = B(2 * blocks);
        scalers.Release();
        Tensor scalerMax = AbsMax(engine, 2 * blocks, blocks / 256);
        Tensor doubled = B(2 * blocks);
        Tensor factor = B(2 * blocks);
        doubled.Release();
        scalerMax.Release();
        Tensor scaled1 = B(2 * blocks);
        Tensor rounded = B(2 * blocks);
        scaled1.Release();
        Tensor clamped = B(2 * blocks);
        rounded.Release();
        clamped.Release();
        factor.Release();
        centred.Release();

        // convert_to_norm_float_weight: the absmax of each block again, scaled_blocks = blocks / scales, the nearest code.
        Tensor absmax = AbsMax(engine, 2 * n, blocks);
        Tensor scaled = B(2 * n);
        Tensor data;
        if (Chunked)
        {
            // quantized_blocks = torch.empty(numel, uint8); per chunk: (value - nf4).abs() [chunk, 16], .min(dim=-1).indices
            // (int64), .to(torch.uint8) into the slice; then [::2] << 4 | [1::2] on uint8.
            Tensor codes = B(n);
            long chunk = Math.Min(n, ChunkElements);
            Tensor difference = B(2 * CodeBook * chunk);
            Tensor distance = B(2 * CodeBook * chunk);
            difference.Release();
            Tensor values = B(2 * chunk);
            Tensor indices = B(8 * chunk);
            distance.Release();
            values.Release();
            Tensor narrowed = B(chunk);
            indices.Release();
            narrowed.Release();
            Tensor shifted = B(n / 2);
            data = create();
            shifted.Release();
            codes.Release();
        }
        else
        {
            // quantize_tensor_nearest(scaled_blocks.flatten(), nf4): (value - nf4) and its .abs() are [numel, 16], then
            // .min(dim=-1) gives values and int64 indices; [::2] << 4 | [1::2] stay int64 until .to(torch.uint8).
            Tensor difference = B(2 * CodeBook * n);
            Tensor distance = B(2 * CodeBook * n);
            difference.Release();
            Tensor values = B(2 * n);
            Tensor indices = B(8 * n);
            distance.Release();
            values.Release();
            Tensor shifted = B(4 * n);
            Tensor combined = B(4 * n);
            shifted.Release();
            data = create();
            combined.Release();
            indices.Release();
        }

        scaled.Release();
        absmax.Release();
        return data;
    }

    /// <summary>
    /// <c>NF4Tensor.get_original_weight</c> of <paramref name="n"/> elements: each half of the codes shifted or masked, then
    /// <c>.to(torch.long)</c>, looked up in the code book, scaled by the dequantized scalers (<c>repeated.flatten()</c>
    /// materializes them per element), and <c>torch.stack</c>ed into the bf16 weight it returns.
    /// </summary>
    public static Tensor OriginalWeight(ReplayEngine engine, long n)
    {
        ArgumentNullException.ThrowIfNull(engine);
        Tensor B(long bytes) => engine.Empty([bytes], ScalarType.UInt8, MemoryTag.Weight);
        Tensor high = B(n / 2);
        Tensor first = B(4 * n);
        high.Release();
        Tensor low = B(n / 2);
        Tensor second = B(4 * n);
        low.Release();
        Tensor firstValues = B(n);
        Tensor secondValues = B(n);
        Tensor quotient = B(n / 32);
        Tensor scalers = B(n / 32);
        quotient.Release();
        Tensor repeated = B(n);
        Tensor firstScaled = B(n);
        repeated.Release();
        Tensor repeatedAgain = B(n);
        Tensor secondScaled = B(n);
        repeatedAgain.Release();
        Tensor weight = B(2 * n);
        foreach (Tensor t in new[] { first, second, firstValues, secondValues, scalers, firstScaled, secondScaled })
        {
            t.Release();
        }

        return weight;
    }

    /// <summary>
    /// The template layer of a cloned build (<see cref="ClonedLayers"/>), in <paramref name="order"/>: each tensor of the
    /// first layer, an NF4 weight made as <c>LoRALinear</c> makes it (a bf16 <c>nn.Linear</c> weight on the device,
    /// <c>to_nf4</c> of it, the bf16 weight freed), the others as they are, then its adapters and its rotary cache. The
    /// caller frees the template once the model is built (the builder's local layer goes out of scope).
    /// </summary>
    public List<Tensor> Template(ReplayEngine engine, ModelArchitecture model, ReplayOptions options, IEnumerable<int[]> order)
    {
        ArgumentNullException.ThrowIfNull(engine);
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(options);
        IReadOnlyList<TensorSpec> tensors = model.Tensors.Tensors;
        int? first = tensors.Min(t => t.Layer);
        Tensor Block(long bytes) => engine.Empty([bytes], ScalarType.UInt8, MemoryTag.Weight);
        List<Tensor> template = [.. order.Select(g => g[0]).Where(i => tensors[i].Layer == first)
            .Select(i => options.Weights[i].Type == ScalarType.Nf4
                ? Construct(engine, tensors[i].Elements, () => Block(options.Weights[i].Bytes))
                : Block(options.Weights[i].Bytes))];
        if (options.Lora is { } lora)
        {
            long size = lora.Type.Bits() / 8;
            template.AddRange(lora.Targets.Where(t => t.Layer == first)
                .SelectMany(t => new[] { Block(lora.Rank * t.InFeatures * size), Block(t.OutFeatures * lora.Rank * size) }));
        }

        template.AddRange(Rotary(model).Select(b => engine.Empty([b.Elements], b.Type, MemoryTag.Weight)));
        return template;
    }

    /// <summary>
    /// One layer's <c>RotaryPositionalEmbeddings(dim=head_dim, max_seq_len=max_seq_len)</c> buffers (fp32,
    /// <c>_rope_init</c>): <c>theta</c> [head_dim / 2] and the <c>cache</c> of cos and sin [max_seq_len, head_dim / 2, 2].
    /// </summary>
    public static IEnumerable<(long Elements, ScalarType Type)> Rotary(ModelArchitecture model)
    {
        ArgumentNullException.ThrowIfNull(model);
        long half = model.HeadDimension / 2;
        long positions = model.MaxPositions
            ?? throw new ModelFormatException("model", "max_position_embeddings", "is missing, but torchtune's rotary cache is max_seq_len positions long.");
        return [(half, ScalarType.Float32), (positions * half * 2, ScalarType.Float32)];
    }

    /// <summary>
    /// Makes the parameter at <paramref name="index"/> of the inventory (<paramref name="create"/>) as torchtune does: an
    /// NF4 weight as the clone of the template's (<c>to_nf4(get_original_weight())</c>) or, built in a loop, from its own
    /// bf16 <c>nn.Linear</c> weight; any other parameter as it is.
    /// </summary>
    public Tensor Build(ReplayEngine engine, ModelArchitecture model, ReplayOptions options, int index, Func<Tensor> create)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(create);
        if (options.Weights[index].Type != ScalarType.Nf4)
        {
            return create();
        }

        long n = model.Tensors.Tensors[index].Elements;
        if (!ClonedLayers)
        {
            return Construct(engine, n, create);
        }

        Tensor original = OriginalWeight(engine, n);
        Tensor p = FromTensor(engine, n, create);
        original.Release();
        return p;
    }

    /// <summary>
    /// <c>model.load_state_dict(base_model_state_dict, strict=False)</c>: for each NF4 weight, in the model's order,
    /// <c>copy_in.to(device)</c> (the checkpoint's bf16 tensor staged on the GPU), <c>from_tensor</c> of it, then its parts
    /// copied in place into the parameter's and both freed. Other parameters are copied from host memory in place.
    /// </summary>
    public void Load(ReplayEngine engine, ModelArchitecture model, ReplayOptions options, IEnumerable<int[]> order)
    {
        ArgumentNullException.ThrowIfNull(engine);
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(options);
        foreach (int i in order.Select(g => g[0]).Where(i => options.Weights[i].Type == ScalarType.Nf4))
        {
            long n = model.Tensors.Tensors[i].Elements;
            Tensor staged = engine.Empty([2 * n], ScalarType.UInt8, MemoryTag.Weight);
            Tensor copy = FromTensor(engine, n, () => engine.Empty([options.Weights[i].Bytes], ScalarType.UInt8, MemoryTag.Weight));
            staged.Release();
            copy.Release();
        }
    }

    /// <summary><c>LoRALinear.__init__</c>: <c>nn.Linear</c>'s bf16 weight on the device, <c>to_nf4</c> of it, the bf16 weight freed.</summary>
    private Tensor Construct(ReplayEngine engine, long n, Func<Tensor> create)
    {
        Tensor linear = engine.Empty([2 * n], ScalarType.UInt8, MemoryTag.Weight);
        Tensor p = FromTensor(engine, n, create);
        linear.Release();
        return p;
    }

    /// <summary><c>get_block_absmax</c>: <c>blocks.abs()</c> (bf16), <c>.max(dim=1)</c>'s values (kept) and int64 indices.</summary>
    private static Tensor AbsMax(ReplayEngine engine, long inputBytes, long blocks)
    {
        Tensor abs = engine.Empty([inputBytes], ScalarType.UInt8, MemoryTag.Weight);
        Tensor values = engine.Empty([2 * blocks], ScalarType.UInt8, MemoryTag.Weight);
        Tensor indices = engine.Empty([8 * blocks], ScalarType.UInt8, MemoryTag.Weight);
        abs.Release();
        indices.Release();
        return values;
    }
}
