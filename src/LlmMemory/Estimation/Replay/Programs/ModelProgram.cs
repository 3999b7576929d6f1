using LlmMemory.Models;

namespace LlmMemory.Estimation.Replay;

/// <summary>
/// The model code of one family written against the replay engine: its parameters in creation order, and a forward pass
/// whose temporaries die where the Python code drops them. Linear layers go through <see cref="Linear"/>, which adds
/// PEFT's or torchtune's LoRA/DoRA and the 4-bit dequantization.
/// </summary>
internal abstract class ModelProgram
{
    protected ModelProgram(ReplayEngine engine, ModelArchitecture model, ReplayOptions options)
    {
        Engine = engine;
        Model = model;
        Options = options;
    }

    public ReplayEngine Engine { get; }

    public ModelArchitecture Model { get; }

    public ReplayOptions Options { get; }

    public ModelWeights Weights { get; protected set; } = null!;

    /// <summary>Bytes allocated once the base model is loaded (what <c>memory_allocated()</c> reads before adapters).</summary>
    public long LoadedBytes { get; protected set; }

    /// <summary>The batch of token ids, [batch, seq] int64.</summary>
    public Tensor Ids { get; set; } = null!;

    /// <summary>
    /// <c>Model.forward(input_ids, labels=…)</c>: the loss (when <paramref name="labels"/>), and what the caller drops with
    /// the output object (logits, cache).
    /// </summary>
    public abstract ForwardResult Forward(bool labels, bool training);

    /// <summary>Creates the LoRA adapters, after <see cref="LoadedBytes"/> was read.</summary>
    protected void AddAdapters()
    {
        if (Options.Lora is { } lora)
        {
            Weights.AddAdapters(Engine, lora);
        }
    }

    /// <summary>
    /// A linear layer by its weight's checkpoint name: the base <c>F.linear</c> (or a 4-bit dequantized matmul) plus the
    /// adapter. PEFT's <c>Linear.forward</c>: <c>result = base(x)</c>; x is cast to the adapter type (<c>_cast_input_dtype</c>,
    /// a copy per adapted module; on a quantized base only outside autocast); <c>result = result + lora_B(lora_A(x)) * scaling</c>, or the
    /// DoRA update; <c>result.to(torch_result_dtype)</c>; with <c>lora_dropout</c> the adapter takes <c>dropout(x)</c> (after the
    /// cast), whose output and bool mask lora_A's backward keeps. torchtune's <c>LoRALinear</c> adds the adapter in the model type.
    /// LitGPT's <c>LoRALinear.forward</c> (litgpt/lora.py, read at 01e39f5; lit_gpt/lora.py of 2023 alike):
    /// <c>pretrained = self.linear(x)</c>; <c>lora = (self.lora_dropout(x) @ lora_A.T @ lora_B.T) * scaling</c>, in the model type
    /// (Fabric's <c>bf16-true</c> converts the adapters with the model); <c>pretrained + lora</c>. Its <c>LoRAQKVLinear</c> drops
    /// x once for q, k and v: the caller passes that one dropped tensor as <paramref name="adapterInput"/>.
    /// <paramref name="adapterKey"/> names the module when it shares another's weight (a tied <c>lm_head</c>).
    /// </summary>
    protected Tensor Linear(string weightName, Operand input, string? adapterKey = null, Tensor? adapterInput = null)
    {
        ReplayEngine s = Engine;
        Tensor x = input.Tensor;
        Tensor weight = Weights[weightName];
        Tensor? bias = Weights.Find(string.Concat(weightName.AsSpan(0, weightName.Length - ".weight".Length), ".bias"));
        Tensor result = weight.Type == ScalarType.Nf4 ? FourBitLinear(x, weight) : s.Linear(x, weight, bias);
        if (Weights.AdapterOf(adapterKey ?? weightName) is not { } adapter)
        {
            input.Done();
            return result;
        }

        ScalarType resultType = result.Type;
        if (Options.LitGpt)
        {
            Tensor dropped = adapterInput?.Retain() ?? AdapterDropout(x);
            input.Done();
            Tensor lora = s.Scale(Operand.Take(s.Linear(Operand.Take(s.Linear(Operand.Take(dropped), adapter.A)), adapter.B)));
            return s.Add(Operand.Take(result), Operand.Take(lora));
        }

        if (Options.Torchtune)
        {
            Tensor sum = s.Add(Operand.Take(result), Operand.Take(s.Scale(Operand.Take(s.Linear(Operand.Take(s.Linear(x, adapter.A)), adapter.B)))));
            input.Done();
            return sum;
        }

        // `x = self._cast_input_dtype(x, lora_A.weight.dtype)` rebinds the parameter: a temporary argument (CPython moves it into
        // the callee) dies here. peft lora/layer.py `Linear.forward` casts whatever autocast does (`_cast_input_dtype` returns x
        // only when the types match or casting is disabled), so under autocast the fp32 adapter gets an fp32 copy of x that
        // lora_A's autocast casts back to 16-bit and saves; lora/bnb.py `Linear4bit.forward` (and gptq.py) cast only when
        // `requires_conversion = not torch.is_autocast_enabled()`, so a quantized base's adapters read x itself.
        bool quantizedBase = weight.Type is ScalarType.Nf4 or ScalarType.UInt8;
        Tensor cast = s.Autocast is null || !quantizedBase ? s.To(x, adapter.A.Type) : x.Retain();
        input.Done();
        if (adapter.Magnitude is null && Options.Lora!.Dropout > 0)
        {
            cast = Blocks.Rebind(cast, s.Dropout(cast));
        }

        Tensor update = adapter.Magnitude is null
            ? s.Scale(Operand.Take(s.Linear(Operand.Take(s.Linear(cast, adapter.A)), adapter.B)))
            : Dora(cast, weight, adapter, result);
        result = Blocks.Rebind(result, s.Add(result, Operand.Take(update)));
        Tensor y = s.To(Operand.Take(result), resultType);
        cast.Release();
        return y;
    }

    /// <summary>
    /// <c>lora_dropout(x)</c>: <c>nn.Dropout</c> in training (a new tensor and a bool mask), the input itself when the probability
    /// is 0 (LitGPT's <c>lambda x: x</c>, PEFT's <c>nn.Identity</c>).
    /// </summary>
    protected Tensor AdapterDropout(Tensor x) => Options.Lora!.Dropout > 0 ? Engine.Dropout(x) : x.Retain();

    /// <summary>
    /// bitsandbytes <c>Linear4bit</c>: the quant state keeps the load type (the activations' type, unless PEFT's k-bit
    /// preparation made them fp32); it computes in <c>bnb_4bit_compute_dtype</c>, the load type (QLoRA) or fp32 (bitsandbytes'
    /// default, <see cref="ReplayOptions.Float32Compute4Bit"/>). Lightning's converter quantized from fp16
    /// (<see cref="ReplayOptions.QuantStateType"/>): the weight dequantizes to fp16, then is copied to the compute type.
    /// </summary>
    private Tensor FourBitLinear(Tensor x, Tensor weight)
    {
        ScalarType load = Options.KbitPreparationFrom ?? x.Type;
        return Blocks.DequantizedLinear(Engine, x, weight, Options.Float32Compute4Bit ? ScalarType.Float32 : load, Options.QuantStateType ?? load,
            Options.FourBitKeepsInput);
    }

    /// <summary>
    /// peft <c>DoraLinearLayer.forward</c> (no dropout, so the base result is reused): the dense
    /// <c>lora_B(lora_A(eye))ᵀ</c>, the detached norm of <c>W + s·BA</c> (weight-sized transients), <c>mag = m / norm</c>,
    /// <c>(mag − 1)·base + mag·lora_B(lora_A(x))·s</c>.
    /// </summary>
    private Tensor Dora(Tensor x, Tensor weight, LoraAdapter adapter, Tensor baseResult)
    {
        ReplayEngine s = Engine;
        (long outFeatures, long inFeatures) = (weight.Shape[0], weight.Shape[1]);
        bool grad = s.GradEnabled;
        Tensor eye = s.Empty([inFeatures, inFeatures], x.Type);
        Tensor loraWeight = s.Linear(Operand.Take(s.Linear(eye, adapter.A)), adapter.B);
        eye.Release();
        loraWeight = s.View(Operand.Take(loraWeight), [outFeatures, inFeatures]);
        s.GradEnabled = false;
        Tensor dense = weight.Type != x.Type ? s.To(weight, x.Type) : s.Empty(weight.Shape, x.Type);
        Tensor scaled = s.Scale(loraWeight);
        Tensor sum = s.Add(dense, scaled);
        Blocks.Release(scaled, dense);
        Tensor norm = s.Empty([outFeatures], x.Type);
        sum.Release();
        s.GradEnabled = grad;
        loraWeight.Release();
        Tensor magnitude = s.Binary(adapter.Magnitude!, norm, BinaryKind.Div);
        Tensor loraResult = s.Linear(Operand.Take(s.Linear(x, adapter.A)), adapter.B);
        Tensor t1 = s.Mul(Operand.Take(s.AddScalar(magnitude)), baseResult);
        Tensor t2 = s.Scale(Operand.Take(s.Mul(magnitude, loraResult)));
        Tensor y = s.Add(t1, t2);
        Blocks.Release(norm, magnitude, loraResult, t1, t2);
        return y;
    }

    /// <summary>
    /// The head and loss in chunks, for every program (the final hidden state <paramref name="h"/> is taken over): LitGPT's
    /// 128-token head with Fabric's fp32 output (<see cref="LitGptHead"/>), or the head in 8 chunks, each chunk's loss taken
    /// (torchtune's <c>CEWithChunkedOutputLoss</c>; fused when compiled).
    /// </summary>
    protected ForwardResult ChunkedHead(string head, Tensor h)
    {
        ReplayEngine s = Engine;
        if (Options.LitGpt && Options.Loss == LossStyle.Chunked)
        {
            return LitGptHead(head, h);
        }

        const int Chunks = 8;
        var chunks = new Tensor[Chunks];
        for (int i = 0; i < Chunks; i++)
        {
            chunks[i] = HeadLinear(head, Operand.Take(s.View(h, [h.Shape[0], h.Shape[1] / Chunks, h.Shape[2]])));
        }

        h.Release();
        s.ModelReturned();
        s.Tag = MemoryTag.Loss;
        Tensor? total = null;
        Tensor? last = null;
        foreach (Tensor chunk in chunks)
        {
            Tensor part = Options.Loss == LossStyle.ChunkedFused ? Blocks.FusedCrossEntropy(s, chunk) : Blocks.CausalLmLoss(s, chunk);
            last?.Release();
            last = part;
            total = total is null ? part.Retain() : Blocks.Rebind(total, s.Add(total, part));
        }

        last?.Release();
        return new ForwardResult(total, chunks, null);
    }

    /// <summary>The output projection; a tied head is the embedding weight through the <c>lm_head</c> module (and its adapter).</summary>
    protected Tensor HeadLinear(string weightName, Operand h) => Linear(weightName, h, "lm_head.weight");

    /// <summary>
    /// LitGPT's head and loss as its fine-tuning loops run them. <c>GPT.forward(idx, lm_head_chunk_size=128)</c> returns
    /// <c>[self.lm_head(x_i) for x_i in x.split(lm_head_chunk_size, dim=1)]</c> (litgpt/lora.py, read at 01e39f5), in the model
    /// type. Fabric's <c>_FabricModule.forward</c> then runs <c>output = precision.convert_output(output)</c> outside the forward
    /// context, which casts every floating tensor of the output to <c>torch.get_default_dtype()</c>, fp32 (lightning/fabric
    /// wrappers.py; <c>HalfPrecision</c> and <c>BitsandbytesPrecision.convert_output</c>): all the chunks are copied to fp32
    /// before the model's list is dropped, and only then does the loop's <c>logits = ...</c> drop the previous micro-batch's.
    /// <c>chunked_cross_entropy</c> takes <c>cross_entropy</c> of each fp32 chunk (its log-softmax saved in fp32).
    /// </summary>
    private ForwardResult LitGptHead(string head, Tensor h)
    {
        const long ChunkSize = 128;
        ReplayEngine s = Engine;
        (long b, long n, long width) = (h.Shape[0], h.Shape[1], h.Shape[2]);
        var chunks = new List<Tensor>();
        for (long start = 0; start < n; start += ChunkSize)
        {
            chunks.Add(HeadLinear(head, Operand.Take(s.View(h, [b, Math.Min(ChunkSize, n - start), width]))));
        }

        h.Release();
        Tensor[] converted = [.. chunks.Select(chunk => s.To(chunk, ScalarType.Float32))];
        Blocks.Release([.. chunks]);
        s.ModelReturned();
        s.Tag = MemoryTag.Loss;
        Tensor? total = null;
        Tensor? last = null;
        foreach (Tensor chunk in converted)
        {
            Tensor part = Blocks.CausalLmLoss(s, chunk);
            last?.Release();
            last = part;
            total = total is null ? part.Retain() : Blocks.Rebind(total, s.Add(total, part));
        }

        last?.Release();
        return new ForwardResult(total, converted, null);
    }
}

/// <summary>What a forward returns: the loss, and the outputs and cache its caller drops with the output object.</summary>
internal sealed record ForwardResult(Tensor? Loss, IReadOnlyList<Tensor> Outputs, KvCache? Cache)
{
    /// <summary>Drops the output object except the loss the caller took.</summary>
    public void ReleaseOutputs()
    {
        foreach (Tensor output in Outputs)
        {
            output.Release();
        }

        Cache?.Release();
    }
}
