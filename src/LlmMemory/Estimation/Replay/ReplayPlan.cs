using LlmMemory.Estimation.Parallel;
using LlmMemory.Estimation.Training;
using LlmMemory.Estimation.Weights;
using LlmMemory.Hardware;
using LlmMemory.Models;
using LlmMemory.Numerics;
using LlmMemory.Workloads;

namespace LlmMemory.Estimation.Replay;

/// <summary>A scenario translated into the run to replay, with what the estimate reports beside it.</summary>
/// <param name="Options">The replay.</param>
/// <param name="Layout">Stored bytes of each weight tensor.</param>
/// <param name="Format">The weight format's name.</param>
/// <param name="Adapters">The LoRA adapters, exact.</param>
/// <param name="Context">Memory outside the allocator: CUDA context and kernels (zero on the host).</param>
/// <param name="Notes">What was assumed.</param>
internal sealed record ReplayPlan(ReplayOptions Options, WeightLayout Layout, string Format, LoraAdapters? Adapters, ByteSize Context,
    IReadOnlyList<string> Notes)
{
    /// <summary>Where accelerate puts the modules of an inference run over several GPUs (<c>device_map="auto"</c>); null on one GPU.</summary>
    public DeviceMap? Devices { get; init; }

    public static ReplayPlan For(ModelArchitecture model, Scenario scenario, Gpu? gpu)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(scenario);
        bool training = scenario.IsTraining;
        bool torchtune = scenario.Engine is Engine.Torchtune or Engine.Torchtitan;
        RefuseDecoderOnlySettings(model, scenario);
        Precision precision = scenario.EffectivePrecision;
        var notes = new List<string>();
        bool trainer2022 = model.Family == ModelFamily.Bert && training;
        if (trainer2022 && scenario.Optimizer is null or OptimizerKind.AdamW && (scenario.Foreach is not null || scenario.Fused is not null))
        {
            // The 2022 Trainer's AdamW is transformers' own (optimization.py), a per-parameter loop with no torch.optim choice.
            string field = scenario.Fused is not null ? "fused" : "foreach";
            throw new ModelFormatException(scenario.Given.OriginOf(field), field,
                "chooses a torch.optim implementation, but BERT is trained as the 2022 Trainer ran it, with transformers' own AdamW (one loop over the parameters).");
        }

        if (trainer2022)
        {
            notes.Add("BERT is trained as the transformers single-GPU guide ran it (2022 Trainer, torch 1.x): transformers' own AdamW, gradients zeroed in place between steps, dropout masks kept for backward, softmax keeping its input as well as its output (torch 1.10 and earlier).");
        }

        (WeightLayout layout, string format) = ChooseLayout(model, scenario, precision);
        bool lightning = LightningConverter(model, scenario, format, torchtune);
        bool litgpt = LitGptCode(model, scenario);
        bool? doubleQuant = DoubleQuant(scenario, format, torchtune);
        if (lightning || doubleQuant is not null)
        {
            WeightFormat fourBit = scenario.Weights ?? WeightFormats.Nf4;
            layout = new WeightLayout([.. layout.Tensors.Select(t =>
                (lightning && t.Tensor.Role == TensorRole.OutputHead) || (doubleQuant is not null && IsFourBit(t))
                    ? WeightStorage.FourBit(t.Tensor, fourBit, doubleQuant)
                    : t)]);
        }

        LoraAdapters? adapters = scenario.EffectiveLora is { } lora ? LoraAdapters.For(model, lora) : null;
        if (adapters?.Dora == true && scenario.EffectiveLora!.Dropout > 0)
        {
            // ModelProgram.Dora replays PEFT's DoRA update without the dropout PEFT applies before it: refused, not skipped.
            throw new ModelFormatException(scenario.Given.OriginOf("lora.dropout"), "lora.dropout",
                $"is {scenario.EffectiveLora.Dropout.ToString(System.Globalization.CultureInfo.InvariantCulture)} with DoRA, whose dropped-out input the replay does not model yet; give 0 for a DoRA run.");
        }

        if (adapters is not null && scenario.Lora is null)
        {
            notes.Add($"No LoRA settings given: r = {adapters.Rank} on {scenario.EffectiveLora!.Targets} (the library's default).");
        }

        ScalarType compute = ComputeType(model, layout);
        if (scenario.KvCacheDtype is DataType kv && (Float(kv.Name) is not ScalarType cache || cache.Bits() != compute.Bits()))
        {
            // transformers' DynamicCache concatenates the K and V the attention computes: they are in the compute type (a 16-bit
            // type named for a 16-bit run, fp16 for bf16, holds the same bytes, so it is taken as that).
            throw new ModelFormatException(scenario.Given.OriginOf("kv_cache_dtype"), "kv_cache_dtype",
                $"is {KvCacheTypes.Spelling(kv)}, but transformers keeps K and V in the compute type ({(compute == ScalarType.Float32 ? "fp32" : compute == ScalarType.Float16 ? "fp16" : "bf16")}); the cache type is a llama.cpp, vLLM and SGLang setting.");
        }

        StoredWeight[] weights = [.. layout.Tensors.Select(t => Stored(t, compute))];
        ScalarType embedding = compute;
        Sharding? sharding = Sharding(model, scenario, precision);
        ScalarType? autocast = sharding is null ? Autocast(precision, training) : null;
        bool flash = scenario.Attention != AttentionKernel.Eager && ((sharding?.ParamType ?? embedding) != ScalarType.Float32 || autocast is not null);
        bool host = gpu?.IsHost == true;
        ByteSize context = host ? ByteSize.Zero : Constants.CudaContext(gpu, training, flash);
        var options = new ReplayOptions
        {
            Batch = scenario.Batch,
            Seq = scenario.Seq - (scenario.NewTokens ?? 0),
            NewTokens = Generation(model, scenario),
            Training = training,
            Weights = weights,
            TrainBase = scenario.Mode == Mode.Training,
            Autocast = autocast,
            Lora = adapters is null ? null
                : new LoraReplay(adapters.Targets, adapters.Rank, adapters.Dora, torchtune || litgpt ? embedding : ScalarType.Float32, scenario.EffectiveLora!.Dropout),
            EagerAttention = scenario.Attention == AttentionKernel.Eager,
            Checkpointing = scenario.GradientCheckpointing != Checkpointing.None,
            OffloadCheckpoints = scenario.GradientCheckpointing == Checkpointing.Offload,
            Optimizer = trainer2022 && scenario.Optimizer is null or OptimizerKind.AdamW ? ReplayOptimizer.AdamWPerParameter
                : Optimizer(scenario, torchtune),
            KeepGradients = trainer2022,
            SoftmaxSavesInput = trainer2022,
            Float32Compute4Bit = format == WeightFormats.Fp4.Name,
            KbitPreparationFrom = KbitPreparation(model, scenario, compute),
            OptimizerInBackward = scenario.OptimizerInBackward,
            MicroBatches = Math.Min(scenario.GradientAccumulation, 2),
            Capacity = gpu?.Budget is ByteSize budget && !host ? budget.Bytes - context.Bytes : null,
            WorkspaceBytes = host ? 0 : Constants.CublasWorkspace(gpu).Bytes,
            Allocator = scenario.AllocConf is string conf ? AllocatorSettings.Parse(conf, scenario.Given.OriginOf("alloc_conf")) : AllocatorSettings.Default,
            CacheInTraining = CacheInTraining(model, scenario, torchtune),
            FourBitKeepsInput = FourBitKeepsInput(scenario, format),
            HoldPreviousLogits = HoldPreviousLogits(scenario) || TorchtuneRecipeRelease(scenario) is { } held && held < TorchtuneRelease.LogitsFreedBeforeBackward,
            QuantStateType = lightning ? ScalarType.Float16 : null,
            Torchtune = torchtune,
            LitGpt = litgpt,
            TorchtuneInit = TorchtuneBuild(scenario, weights, sharding),
            Loss = Loss(model, scenario, torchtune),
            Compiled = scenario.Compile,
            Sharding = sharding,
        };
        return new ReplayPlan(options, layout, format, adapters, context, notes)
        {
            Devices = training || scenario.Parallel.Gpus < 2 ? null : AutoDeviceMap(model, scenario, gpu, weights, context),
        };
    }

    /// <summary>
    /// transformers inference over <c>parallel.gpus</c> GPUs as <c>from_pretrained(..., device_map="auto")</c> places it, for
    /// the Llama-style decoders (whose program knows the module tree accelerate walks) with unquantized weights (a quantizer
    /// changes the sizes and the budget accelerate balances, <c>hf_quantizer.adjust_max_memory</c>). Each GPU's free memory
    /// is its budget less the CUDA context, what <c>get_max_memory</c> reads with <c>mem_get_info</c>.
    /// </summary>
    private static DeviceMap AutoDeviceMap(ModelArchitecture model, Scenario scenario, Gpu? gpu, StoredWeight[] weights, ByteSize context)
    {
        int gpus = scenario.Parallel.Gpus;
        string? problem = model.Family != ModelFamily.LlamaLike ? $"is replayed for Llama-style decoders, not yet for {model.ModelType}"
            : weights.Length != model.Tensors.Tensors.Count || weights.Any(w => !w.Type.IsFloatingPoint())
                ? "is replayed for unquantized weights; a quantizer changes the module sizes and the memory accelerate balances"
            : gpu?.IsHost == true ? "spreads a model over GPUs, not host memory"
            : null;
        if (problem is not null)
        {
            throw new ModelFormatException(scenario.Given.OriginOf("parallel.gpus"), "parallel.gpus",
                $"is {gpus}, but transformers inference across GPUs (device_map=\"auto\") {problem}.");
        }

        IReadOnlyList<TensorSpec> tensors = model.Tensors.Tensors;
        long Bytes(Func<TensorSpec, bool> where) => Enumerable.Range(0, tensors.Count).Where(i => where(tensors[i])).Sum(i => weights[i].Bytes);
        long rotary = DecoderStyle.Of(model).Buffers(model).Sum(b => b.Elements * b.Type.Bits() / 8);
        int leaves = tensors.Select(t => t.Name[..Math.Max(t.Name.LastIndexOf('.'), 0)]).Distinct(StringComparer.Ordinal).Count() + (rotary > 0 ? 1 : 0);
        var sizes = new ModuleSizes(
            Bytes(t => t.Layer is null && t.Role == TensorRole.TokenEmbedding),
            [.. Enumerable.Range(0, model.LayerCount).Select(layer => Bytes(t => t.Layer == layer))],
            Bytes(t => t.Layer is null && t.Role is not (TensorRole.TokenEmbedding or TensorRole.OutputHead)),
            rotary,
            Bytes(t => t.Role == TensorRole.OutputHead),
            leaves,
            model.TiedEmbeddings);
        long free = gpu?.Budget is ByteSize budget ? budget.Bytes - context.Bytes : DeviceMap.Unbounded;
        try
        {
            return DeviceMap.Auto(sizes, gpus, free);
        }
        catch (ArgumentException e)
        {
            throw new ModelFormatException(scenario.Given.OriginOf("parallel.gpus"), "parallel.gpus", $"is {gpus}, but {e.Message}.");
        }
    }

    /// <summary>
    /// The training forward's KV cache: <c>use_cache</c> when the scenario gives it, else transformers' default (the config's
    /// <c>use_cache</c>, true unless it says otherwise) and torchtune's (no cache in its models' training forward). transformers
    /// turns the cache off under gradient checkpointing ("`use_cache=True` is incompatible with gradient checkpointing"), so
    /// <c>use_cache: true</c> there changes nothing and is refused, as is asking torchtune's models for a cache they never build.
    /// </summary>
    private static bool CacheInTraining(ModelArchitecture model, Scenario scenario, bool torchtune)
    {
        if (scenario.UseCache is not bool given)
        {
            return !torchtune && model.UseCache;
        }

        string? problem = !scenario.IsTraining ? "it is the training forward's cache; an inference forward is replayed with use_cache=True"
            : given && torchtune ? $"{Names.Of(scenario.Engine)}'s models build no KV cache in a training forward"
            : given && scenario.GradientCheckpointing != Checkpointing.None ? "transformers turns the cache off under gradient checkpointing (\"`use_cache=True` is incompatible with gradient checkpointing\")"
            : null;
        return problem is null ? given
            : throw new ModelFormatException(scenario.Given.OriginOf("use_cache"), "use_cache", $"is {(given ? "true" : "false")}, but {problem}.");
    }

    /// <summary>
    /// bitsandbytes' double quantization (<c>bnb_4bit_use_double_quant</c>; Lightning's <c>nf4</c> against <c>nf4-dq</c>): the
    /// absmax of each 64 weights as fp32 (4 B per block), or quantized to 8 bits with an fp32 constant per 256 blocks and one
    /// fp32 offset (QLoRA paper §2). Null when the scenario leaves it to the format; refused without bitsandbytes 4-bit weights
    /// and for torchtune/torchtitan (torchao NF4 has its own scaler layout).
    /// </summary>
    private static bool? DoubleQuant(Scenario scenario, string format, bool torchtune)
    {
        if (scenario.Bnb4bitUseDoubleQuant is not bool given)
        {
            return null;
        }

        string? problem = format != WeightFormats.Nf4.Name && format != WeightFormats.Fp4.Name
            ? $"the weights are {format}; it is a setting of bitsandbytes 4-bit weights (nf4, fp4)"
            : torchtune ? $"{Names.Of(scenario.Engine)} quantizes with torchao's NF4, not bitsandbytes"
            : null;
        return problem is null ? given
            : throw new ModelFormatException(scenario.Given.OriginOf("bnb_4bit_use_double_quant"), "bnb_4bit_use_double_quant", $"is {(given ? "true" : "false")}, but {problem}.");
    }

    private static bool IsFourBit(StoredTensor t) => t.Storage is "NF4+DQ" or "FP4+DQ" or "4-bit + fp32 absmax";

    /// <summary>
    /// Lightning's <c>BitsandbytesPrecision</c> (lightning/fabric/plugins/precision/bitsandbytes.py), as LitGPT's <c>--quantize
    /// bnb.*</c> uses it: it replaces every <c>torch.nn.Linear</c> it is not told to ignore (<c>_convert_layers</c>, or the class
    /// replacement of <c>init_context</c>), so the output head is 4-bit too, where transformers keeps it; and
    /// <c>_Linear4bit._quantize_weight</c> quantizes <c>weight.contiguous().to(device="cuda", dtype=torch.half)</c>, so the
    /// quant state is fp16 and every matmul dequantizes to fp16 before <c>.to(A.dtype)</c>. Refused without bitsandbytes 4-bit
    /// weights, for torchtune's and torchtitan's models (torchao NF4), and for a tied head (which the replay keeps shared).
    /// </summary>
    private static bool LightningConverter(ModelArchitecture model, Scenario scenario, string format, bool torchtune)
    {
        if (scenario.BitsandbytesConverter != BitsandbytesConverter.Lightning)
        {
            return false;
        }

        string? problem = format != WeightFormats.Nf4.Name && format != WeightFormats.Fp4.Name
            ? $"the weights are {format}; it converts linears to bitsandbytes 4-bit ones (nf4, fp4)"
            : torchtune ? $"{Names.Of(scenario.Engine)} quantizes with torchao's NF4, not bitsandbytes"
            : model.TiedEmbeddings ? "the head is tied to the embedding, and a converted tied head is not replayed"
            : null;
        return problem is null
            ? true
            : throw new ModelFormatException(scenario.Given.OriginOf("bitsandbytes_converter"), "bitsandbytes_converter", $"is lightning, but {problem}.");
    }

    /// <summary>
    /// Whether bitsandbytes' 4-bit matmul keeps its input for backward: releases before 0.43.2. <c>bitsandbytes_version</c> is
    /// refused where no weight is a bitsandbytes 4-bit one, and with gradient checkpointing when the release keeps the input:
    /// it sits on <c>ctx</c> outside <c>save_for_backward</c>, where checkpointing's hooks do not see it, which the replay does
    /// not model.
    /// </summary>
    private static bool FourBitKeepsInput(Scenario scenario, string format)
    {
        if (scenario.BitsandbytesVersion is not { } release)
        {
            return false;
        }

        bool keeps = BitsandbytesRelease.KeepsFourBitInput(release);
        string? problem = format != WeightFormats.Nf4.Name && format != WeightFormats.Fp4.Name
            ? $"the weights are {format}; the release changes the training step of bitsandbytes 4-bit weights (nf4, fp4) here"
            : !scenario.IsTraining ? "the release changes what a 4-bit matmul keeps for backward, and an inference forward has no backward"
            : keeps && scenario.GradientCheckpointing != Checkpointing.None
                ? "releases before 0.43.2 keep each 4-bit matmul's input on ctx, outside save_for_backward, which gradient checkpointing does not see; that is not replayed"
                : null;
        return problem is null ? keeps
            : throw new ModelFormatException(scenario.Given.OriginOf("bitsandbytes_version"), "bitsandbytes_version", $"is {release}, but {problem}.");
    }

    /// <summary>
    /// LitGPT's module code (<c>model_code: litgpt</c>), for the families whose LitGPT modules the replay follows: the Llama-style
    /// decoders (LitGPT's <c>LLaMAMLP</c>, RMSNorm, fused qkv) and GPT-NeoX (whose transformers attention already splits one fused
    /// qkv output by views, as LitGPT's does); refused outside training on one GPU under engine pytorch, with eager attention, and
    /// for Phi-3, whose fused <c>gate_up_proj</c> LitGPT splits into <c>fc_1</c> and <c>fc_2</c>.
    /// </summary>
    private static bool LitGptCode(ModelArchitecture model, Scenario scenario)
    {
        if (scenario.ModelCode != ModelCode.Litgpt)
        {
            return false;
        }

        string? problem = !scenario.IsTraining ? "it is replayed for training (mode training, lora or qlora)"
            : scenario.Engine != Engine.Pytorch ? $"LitGPT runs its own model code under engine pytorch, not {Names.Of(scenario.Engine)}"
            : scenario.Attention == AttentionKernel.Eager ? "LitGPT's attention calls F.scaled_dot_product_attention (attention sdpa or flash), not eager"
            : model.Experts is not null || model.LatentAttention is not null || model.ModelType.StartsWith("gemma", StringComparison.Ordinal)
                || (model.Family != ModelFamily.LlamaLike && model.ModelType != "gpt_neox")
                ? $"LitGPT's modules are replayed for Llama-style decoders without experts (Llama, Mistral, Qwen) and GPT-NeoX, not {model.ModelType}"
            : DecoderStyle.Of(model).FusedProjections
                ? "LitGPT runs this model's MLP as two LoRALinear (fc_1, fc_2, each with its own dropout) where the replay's program fuses gate_up_proj"
            : null;
        return problem is null ? true
            : throw new ModelFormatException(scenario.Given.OriginOf("model_code"), "model_code", $"is litgpt, but {problem}.");
    }

    /// <summary>
    /// LitGPT's loop (<c>logits = model(...)</c>, then the loss outside the model): the previous micro-batch's logits live until
    /// the next forward returns. Refused outside training and for engines whose loss is taken inside the model's forward
    /// (transformers: the HF Trainer drops the output object; torchtune and torchtitan take the loss on outputs they drop).
    /// </summary>
    private static bool HoldPreviousLogits(Scenario scenario)
    {
        if (!scenario.HoldPreviousLogits)
        {
            return false;
        }

        string? problem = !scenario.IsTraining ? "it is a training loop setting (mode training, lora or qlora)"
            : scenario.Engine != Engine.Pytorch ? $"it describes a PyTorch loop that takes the loss outside the model (LitGPT's), replayed for engine pytorch, not {Names.Of(scenario.Engine)}"
            : null;
        return problem is null ? true
            : throw new ModelFormatException(scenario.Given.OriginOf("hold_previous_logits"), "hold_previous_logits", $"is true, but {problem}.");
    }

    /// <summary>
    /// PEFT's <c>prepare_model_for_kbit_training</c>: it casts the parameters of the load type (bf16 or fp16) to fp32, so a
    /// model already in fp32 keeps every tensor as it is. Replayed for the Llama-style decoders' program.
    /// </summary>
    private static ScalarType? KbitPreparation(ModelArchitecture model, Scenario scenario, ScalarType loaded)
    {
        if (!scenario.KbitPreparation)
        {
            return null;
        }

        return model.Family == ModelFamily.LlamaLike
            ? loaded is ScalarType.BFloat16 or ScalarType.Float16 ? loaded : null
            : throw new ModelFormatException(scenario.Given.OriginOf("kbit_preparation"), "kbit_preparation",
                $"is true, but PEFT's prepare_model_for_kbit_training is replayed for Llama-style decoders (Llama, Mistral, Qwen, Gemma, Phi-3), not yet for {model.ModelType}.");
    }

    /// <summary>
    /// One rank of an FSDP2 run (<c>parallel.fsdp</c>; the caller routes only data-parallel FSDP training here): sharded over
    /// the data-parallel ranks (HYBRID_SHARD: the ranks of one node), resharded after each block's forward except under
    /// SHARD_GRAD_OP. Mixed precision is FSDP2's <c>MixedPrecisionPolicy(param_dtype=16-bit, reduce_dtype=float32)</c> over
    /// fp32 shards, as torchtitan and accelerate set it, instead of autocast; CPU offload is <c>CPUOffloadPolicy</c>. A plain
    /// PyTorch script follows PyTorch's FSDP2 recipe (build on the meta device, <c>fully_shard</c>, <c>to_empty</c>), which
    /// leaves a tied head untied; transformers and accelerate tie it again after loading.
    /// </summary>
    private static Sharding? Sharding(ModelArchitecture model, Scenario scenario, Precision precision)
    {
        if (scenario.CustomShardedLayers != CustomShardedLayers.None && (scenario.Engine != Engine.Torchtune || scenario.Parallel.Fsdp == FsdpMode.None))
        {
            throw new ModelFormatException(scenario.Given.OriginOf("custom_sharded_layers"), "custom_sharded_layers",
                $"is {ScenarioFields.Value(scenario, "custom_sharded_layers")}, but it names torchtune modules that its FSDP recipes shard on their own; give engine torchtune with parallel.fsdp.");
        }

        if (scenario.CustomShardedLayers.HasFlag(CustomShardedLayers.Output) && model.TiedEmbeddings)
        {
            throw new ModelFormatException(scenario.Given.OriginOf("custom_sharded_layers"), "custom_sharded_layers",
                $"is {ScenarioFields.Value(scenario, "custom_sharded_layers")}, but {model.ModelType} ties its head to the embedding: torchtune's TiedLinear output has no parameter of its own to shard.");
        }

        if (scenario.Parallel.Zero > 0 && scenario.Parallel.Fsdp == FsdpMode.None && scenario.Mode == Mode.Training)
        {
            return Zero(scenario, precision);
        }

        if (scenario.Parallel.Fsdp == FsdpMode.None || !scenario.IsTraining)
        {
            return null;
        }

        ScalarType? param = precision switch
        {
            Precision.MixedBf16 or Precision.Fp8 => ScalarType.BFloat16,
            Precision.MixedFp16 => ScalarType.Float16,
            _ => null,
        };
        return new Sharding(ShardPlan.For(scenario).OptimizerShards, scenario.Parallel.Fsdp != FsdpMode.ShardGradOp, param,
            param is null ? null : ScalarType.Float32, scenario.Parallel.Offload != OffloadMode.None,
            UntiedHead: model.TiedEmbeddings && scenario.Engine == Engine.Pytorch, OwnUnits: scenario.CustomShardedLayers);
    }

    /// <summary>
    /// One rank of a DeepSpeed ZeRO run over the data-parallel GPUs: the engine casts the module to the 16-bit type of its
    /// bf16 or fp16 section (mixed-bf16 and bf16 are DeepSpeed's <c>bf16.enabled</c>, mixed-fp16 its <c>fp16.enabled</c>;
    /// fp32 runs with neither) and computes in it without autocast; the optimizer keeps the fp32 master of its partition
    /// whatever the engine named, since ZeRO is DeepSpeed's. Parameter offload exists for stage 3 only (DeepSpeed's
    /// <c>offload_param</c> is valid only with stage 3).
    /// </summary>
    private static Sharding Zero(Scenario scenario, Precision precision)
    {
        ParallelSettings p = scenario.Parallel;
        if (p.Offload == OffloadMode.OptimizerAndParams && p.Zero < 3)
        {
            throw new ModelFormatException(scenario.Given.OriginOf("parallel.offload"), "parallel.offload",
                $"is optimizer+params, but DeepSpeed offloads parameters (offload_param) with ZeRO stage 3 only, and parallel.zero is {p.Zero}; use optimizer.");
        }

        ScalarType type = precision switch
        {
            Precision.MixedBf16 or Precision.Bf16 or Precision.Fp8 => ScalarType.BFloat16,
            Precision.MixedFp16 => ScalarType.Float16,
            _ => ScalarType.Float32,
        };
        return new Sharding(ShardPlan.For(scenario).OptimizerShards, ReshardAfterForward: true, type, type, p.Offload != OffloadMode.None, UntiedHead: false,
            new ZeroSettings(p.Zero, p.Offload != OffloadMode.None, p.Offload == OffloadMode.OptimizerAndParams));
    }

    /// <summary>
    /// The new tokens of a generate() run, where the replay has it: Llama-style decoders (the generate() path of
    /// <see cref="DecoderProgram"/>) with the dynamic cache and no sliding-window layers (whose cache drops old tokens
    /// as it decodes).
    /// </summary>
    private static int? Generation(ModelArchitecture model, Scenario scenario)
    {
        if (scenario.NewTokens is not int newTokens)
        {
            return null;
        }

        string? problem = scenario.Cache == GenerationCache.Static ? "the static cache is not replayed yet (the dynamic cache, generate()'s default, is)"
            : model.Family != ModelFamily.LlamaLike ? $"generate() is replayed for Llama-style decoders, not yet for {model.ModelType}"
            : model.SlidingWindow is not null && model.LayerAttention.Contains(AttentionKind.Sliding) ? "generate() with sliding-window layers is not replayed yet"
            : null;
        string field = scenario.Cache == GenerationCache.Static ? "cache" : "new_tokens";
        return problem is null ? newTokens
            : throw new ModelFormatException(scenario.Given.OriginOf(field), field, $"is {ScenarioFields.Value(scenario, field)}, but {problem}; without new_tokens the estimate is one forward over seq tokens (the prefill peak).");
    }

    /// <summary>
    /// Training stores parameters as the precision says (fp32 for fp32 and mixed precision, bf16 for pure bf16) unless the
    /// scenario names a format; QLoRA's base defaults to NF4. Inference uses the model's own format.
    /// </summary>
    private static (WeightLayout Layout, string Format) ChooseLayout(ModelArchitecture model, Scenario scenario, Precision precision)
    {
        if (!scenario.IsTraining || scenario.Weights is not null)
        {
            WeightLayout chosen = WeightChoice.Layout(model, scenario, out string name);
            return (chosen, name);
        }

        // DeepSpeed casts the module to the 16-bit type of its bf16/fp16 section (the fp32 master is the optimizer's).
        bool zero = scenario.Parallel.Zero > 0 && scenario.Parallel.Fsdp == FsdpMode.None && scenario.Mode == Mode.Training;
        WeightFormat format = scenario.Mode == Mode.Qlora ? WeightFormats.Nf4
            : zero && precision == Precision.MixedFp16 ? WeightFormats.Fp16
            : precision == Precision.Bf16 || (zero && precision == Precision.MixedBf16) ? WeightFormats.Bf16 : WeightFormats.Fp32;
        DataType unquantized = model.StoredType is DataType s && s.BlockBytes == 2 ? s : DataTypes.BF16;
        return (WeightStorage.Layout(model, format, unquantized), format.Name);
    }

    /// <summary>Plain tensors keep their float type; 4-bit bitsandbytes weights are dequantized per matmul; other quantized storage is opaque bytes.</summary>
    /// <summary>
    /// What float tensors compute in: the embedding's type when it is stored as a float (fp32 models stay fp32), else the
    /// 16-bit type of the model (transformers dequantizes a GGUF file to it).
    /// </summary>
    private static ScalarType ComputeType(ModelArchitecture model, WeightLayout layout) =>
        Float(layout.Tensors[0].Storage) ?? (model.StoredType == DataTypes.F16 ? ScalarType.Float16 : ScalarType.BFloat16);

    /// <summary>
    /// The type ops see: every float tensor in the compute type (a GGUF file's F32 norms included), 4-bit bitsandbytes
    /// weights dequantized per matmul, other quantized storage as opaque bytes; the bytes are always the stored ones.
    /// </summary>
    private static StoredWeight Stored(StoredTensor tensor, ScalarType compute) => new(tensor.Bytes,
        Float(tensor.Storage) is not null ? compute
        : tensor.Storage is "NF4+DQ" or "FP4+DQ" or "4-bit + fp32 absmax" ? ScalarType.Nf4
        : ScalarType.UInt8);

    private static ScalarType? Float(string storage) =>
        !DataTypes.TryParse(storage, out DataType type) ? null
        : type == DataTypes.F32 ? ScalarType.Float32
        : type == DataTypes.BF16 ? ScalarType.BFloat16
        : type == DataTypes.F16 ? ScalarType.Float16
        : null;

    private static ScalarType? Autocast(Precision precision, bool training) => !training ? null : precision switch
    {
        Precision.MixedBf16 or Precision.Fp8 => ScalarType.BFloat16,
        Precision.MixedFp16 => ScalarType.Float16,
        _ => null,
    };

    /// <summary>
    /// The optimizer's implementation: torch.optim's AdamW is foreach by default on CUDA (<c>_default_to_fused_or_foreach</c>),
    /// fused when asked (torchtune's configs ask, from the releases after <see cref="TorchtuneRelease.FusedAdamWInConfigs"/>), the single-tensor loop with <c>foreach=False</c>; the other optimizers have
    /// one implementation each here, so <c>foreach</c>/<c>fused</c> are torch.optim AdamW and SGD settings only.
    /// </summary>
    private static ReplayOptimizer Optimizer(Scenario scenario, bool torchtune)
    {
        OptimizerKind kind = scenario.Optimizer ?? OptimizerKind.AdamW;
        if ((scenario.Foreach is not null || scenario.Fused is not null) && kind is not (OptimizerKind.AdamW or OptimizerKind.Sgd or OptimizerKind.SgdMomentum))
        {
            string field = scenario.Fused is not null ? "fused" : "foreach";
            throw new ModelFormatException(scenario.Given.OriginOf(field), field,
                $"chooses a torch.optim implementation, but {Names.Of(kind)} is not torch.optim's AdamW or SGD.");
        }

        bool recipeFuses = torchtune && !(TorchtuneRecipeRelease(scenario) is { } release && release < TorchtuneRelease.FusedAdamWInConfigs);
        return kind == OptimizerKind.AdamW
            ? scenario.Fused ?? recipeFuses ? ReplayOptimizer.AdamWFused
                : scenario.Foreach == false ? ReplayOptimizer.AdamWSingleTensor
                : ReplayOptimizer.AdamW
            : Optimizer(kind);
    }

    private static ReplayOptimizer Optimizer(OptimizerKind kind) => kind switch
    {
        OptimizerKind.AdamW8Bit => ReplayOptimizer.AdamW8Bit,
        OptimizerKind.PagedAdamW => ReplayOptimizer.Paged,
        OptimizerKind.PagedAdamW8Bit => ReplayOptimizer.Paged8Bit,
        OptimizerKind.Adafactor => ReplayOptimizer.Adafactor,
        OptimizerKind.SgdMomentum => ReplayOptimizer.SgdMomentum,
        OptimizerKind.Lion => ReplayOptimizer.Lion,
        _ => ReplayOptimizer.Sgd,
    };

    /// <summary>
    /// torchtune's build of the model on one GPU before the first step (<see cref="Replay.TorchtuneInit"/>), replayed when
    /// engine torchtune trains NF4 weights unsharded, or when the release given in <c>engine_options.version</c> deep-copies
    /// its layers (before 0.6.0). Before 0.2.0 the NF4 quantization is torchao 0.1's whole-tensor one; absent means a
    /// current release (layers built in a loop, chunked quantization). Refused for sharded runs, which build the model
    /// otherwise (FSDP recipes instantiate it on the meta device).
    /// </summary>
    private static TorchtuneInit? TorchtuneBuild(Scenario scenario, IReadOnlyList<StoredWeight> weights, Sharding? sharding)
    {
        bool applies = scenario.Engine == Engine.Torchtune && scenario.IsTraining && sharding is null;
        string? text = scenario.Engine == Engine.Torchtune ? scenario.EngineOptions.Version : null;
        Version? release = text is null ? null : TorchtuneRelease.TryParse(text);
        string? problem = text is null ? null
            : release is null ? "which is not a torchtune release (such as 0.1.1 or 0.6.1)"
            : release < TorchtuneRelease.Oldest ? $"older than the torchtune releases read (from {TorchtuneRelease.Oldest.ToString(2)})"
            : !applies ? "but a torchtune release changes only the single-device recipe (the model's build and the loss), which this run does not use"
            : release < TorchtuneRelease.LabelsPadded && (scenario.CrossEntropy != CrossEntropyKind.Standard || scenario.Compile)
                ? $"whose recipe takes its own standard, uncompiled loss (the chunked one came with 0.3.0, PR #1390), not {(scenario.Compile ? "a compiled one" : Names.Of(scenario.CrossEntropy))}"
            : null;
        if (problem is not null)
        {
            throw new ModelFormatException(scenario.Given.OriginOf("engine_options.version"), "engine_options.version", $"is \"{text}\", {problem}.");
        }

        bool cloned = release is not null && release < TorchtuneRelease.LayersBuiltInLoop;
        return applies && (cloned || weights.Any(w => w.Type == ScalarType.Nf4))
            ? new TorchtuneInit(cloned, Chunked: release is null || release >= TorchtuneRelease.ChunkedNf4)
            : null;
    }

    /// <summary>
    /// The loss variants and compiled kernels are replayed in the Llama-style program only (<see cref="DecoderProgram"/>:
    /// its loss styles and compiled norms); the GPT-2/NeoX/J/OPT/Bloom/Falcon and BERT programs run the standard loss, or
    /// the chunked head (<see cref="ModelProgram.ChunkedHead"/>), uncompiled, so a scenario that asks them for another
    /// would get the standard figure under its name.
    /// </summary>
    private static void RefuseDecoderOnlySettings(ModelArchitecture model, Scenario scenario)
    {
        if (model.Family == ModelFamily.LlamaLike)
        {
            return;
        }

        if (scenario.CrossEntropy is not (CrossEntropyKind.Standard or CrossEntropyKind.Chunked)
            || (scenario.CrossEntropy == CrossEntropyKind.Chunked && model.Family == ModelFamily.Bert))
        {
            throw new ModelFormatException(scenario.Given.OriginOf("cross_entropy"), "cross_entropy",
                $"is {Names.Of(scenario.CrossEntropy)}, which the replay runs for the Llama-style decoders only, not {model.ModelType} (replayed with the standard loss).");
        }

        if (scenario.Compile)
        {
            throw new ModelFormatException(scenario.Given.OriginOf("compile"), "compile",
                $"is true, but torch.compile's fused kernels are replayed for the Llama-style decoders only, not {model.ModelType} (replayed eagerly).");
        }
    }

    private static LossStyle Loss(ModelArchitecture model, Scenario scenario, bool torchtune) => scenario.CrossEntropy switch
    {
        _ when scenario.EngineOptions.Version is { } text && scenario.Engine != Engine.Torchtune => TransformersLoss(model, scenario, text),
        CrossEntropyKind.Chunked => scenario.Compile ? LossStyle.ChunkedFused : LossStyle.Chunked,
        CrossEntropyKind.Fused => LossStyle.ChunkedFused,
        // No release given means the newest modelled (5.17), where FOAK's loss is the model's loss_function, as from 4.46.
        CrossEntropyKind.InPlace => LossStyle.InPlaceLossFunction,
        CrossEntropyKind.FusedLinear => LossStyle.FusedLinear,
        CrossEntropyKind.Unsloth => scenario.Engine != Engine.Transformers || scenario.Compile
            ? throw new ModelFormatException(scenario.Given.OriginOf("cross_entropy"), "cross_entropy",
                $"is unsloth, Unsloth's own forward over a transformers model, replayed uncompiled for engine transformers, not {(scenario.Compile ? "compiled" : Names.Of(scenario.Engine))}.")
            // Other families were refused by RefuseDecoderOnlySettings.
            : model.FinalLogitSoftcap is not null
            ? throw new ModelFormatException(scenario.Given.OriginOf("cross_entropy"), "cross_entropy",
                $"is unsloth, whose fast forward is replayed for the Llama-like decoders without a final logit soft-cap (Unsloth applies the cap inside its kernel), not {model.ModelType}.")
            : LossStyle.InPlaceModelLogits,
        _ when scenario.Compile => LossStyle.Fused,
        _ => !torchtune ? LossStyle.Transformers
            : TorchtuneRecipeRelease(scenario) is { } release && release < TorchtuneRelease.LabelsPadded ? LossStyle.FloatShiftedTransposed
            : LossStyle.Float,
    };

    /// <summary>The torchtune release given in <c>engine_options.version</c> (checked in <see cref="TorchtuneBuild"/>); null when none.</summary>
    private static Version? TorchtuneRecipeRelease(Scenario scenario) =>
        scenario.Engine == Engine.Torchtune && scenario.EngineOptions.Version is { } text ? TorchtuneRelease.TryParse(text) : null;

    /// <summary>
    /// The standard loss as the transformers release given in <c>engine_options.version</c> writes it (see
    /// <see cref="TransformersRelease"/>): before 4.46 in the model's forward, 4.46 to 4.48 with a shifted fp32 copy beside
    /// the kept 16-bit logits, from 4.49 with padded labels. FOAK's in-place loss (fms-acceleration PR 123) patches the
    /// model's <c>CrossEntropyLoss</c> before 4.46 and its <c>loss_function</c> from 4.46 on, with its own copy of 4.46's
    /// shifting (so 4.49's padding does not reach it). Refused for other engines, for the other losses (which the
    /// release does not change here), for models whose releases were not read (the Llama-like decoders without a logit
    /// soft-cap were: Llama, Mistral) and for releases outside 4.0 to the newest modelled.
    /// </summary>
    private static LossStyle TransformersLoss(ModelArchitecture model, Scenario scenario, string text)
    {
        Version? release = TransformersRelease.TryParse(text);
        string? problem = scenario.Engine != Engine.Transformers
            ? $"but a release is read for engine transformers in training on one GPU (the causal-LM loss), not for {Names.Of(scenario.Engine)}"
            : release is null ? "which is not a transformers release (such as 4.48.1 or 5.17.0)"
            : release < TransformersRelease.Oldest ? $"older than the transformers releases modelled ({TransformersRelease.Oldest.ToString(2)} to {TransformersRelease.Newest.ToString(2)})"
            : release.Major > TransformersRelease.Newest.Major || (release.Major == TransformersRelease.Newest.Major && release.Minor > TransformersRelease.Newest.Minor)
                ? $"newer than the transformers releases modelled (up to {TransformersRelease.Newest.ToString(2)}); give {TransformersRelease.Newest.ToString(2)} or leave the version out"
            : model.Family != ModelFamily.LlamaLike || model.FinalLogitSoftcap is not null
                ? $"but the release's loss is modelled as Llama's and Mistral's forward writes it, not {model.ModelType}'s"
            : scenario.CrossEntropy is not (CrossEntropyKind.Standard or CrossEntropyKind.InPlace) || scenario.Compile
                ? $"but the release changes only transformers' own (standard, uncompiled) causal-LM loss and where FOAK's in-place loss plugs in, and this run's loss is {(scenario.Compile ? "compiled" : Names.Of(scenario.CrossEntropy))}"
            : null;
        return problem is not null
            ? throw new ModelFormatException(scenario.Given.OriginOf("engine_options.version"), "engine_options.version", $"is \"{text}\", {problem}.")
            : scenario.CrossEntropy == CrossEntropyKind.InPlace ? release! < TransformersRelease.LossFunction ? LossStyle.InPlace : LossStyle.InPlaceLossFunction
            : release! < TransformersRelease.LossFunction ? LossStyle.TransformersInModel
            : release < TransformersRelease.PaddedLabels ? LossStyle.TransformersShifted
            : LossStyle.Transformers;
    }
}
