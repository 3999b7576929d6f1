using System.CommandLine;
using LlmMemory.Workloads;

namespace LlmMemory.Cli.Commands;

/// <summary>The flags that describe a scenario; each has a field in docs/scenario.md and overrides the <c>--scenario</c> file.</summary>
internal sealed class ScenarioOptions
{
    public Argument<string?> Model { get; } = new("model") { Description = "Catalog id or alias, a .gguf / .safetensors / index / config.json path, a checkpoint folder, a Hugging Face id org/name[@rev][:quant], or a count such as 7B.", Arity = ArgumentArity.ZeroOrOne };

    public Option<string?> ScenarioFile { get; } = new("--scenario") { Description = "Read the scenario from a JSON file (docs/scenario.md); flags override it." };

    public Option<string?> Mode { get; } = Named<Mode>("--mode", "What is done with the model");

    public Option<string?> Engine { get; } = Named<Engine>("--engine", "Whose memory accounting to follow");

    public Option<string?> Weights { get; } = new("--weights") { Description = "Weight format: bf16, fp16, fp32, fp8, int8, nf4, fp4, gptq-int4, awq-int4, mxfp4, q8_0, q4_k_m, …" };

    public Option<string?> Precision { get; } = Named<Precision>("--precision", "Training regime");

    public Option<string?> Optimizer { get; } = Named<OptimizerKind>("--optimizer", "Optimizer whose states are held");

    public Option<bool> OptimizerInBackward { get; } = new("--optimizer-in-backward") { Description = "Step each parameter during backward and free its gradient." };

    public Option<int?> Batch { get; } = new("--batch") { Description = "Micro-batch size (llama.cpp: parallel sequences)." };

    public Option<int?> Seq { get; } = new("--seq", "--context") { Description = "Tokens per sequence, or context length for inference." };

    public Option<int?> GradientAccumulation { get; } = new("--gradient-accumulation") { Description = "Micro-batches per optimizer step." };

    public Option<string?> GradientCheckpointing { get; } = Named<Checkpointing>("--gradient-checkpointing", "Activation recomputation");

    public Option<string?> Attention { get; } = Named<AttentionKernel>("--attention", "Attention kernel");

    public Option<string?> CrossEntropy { get; } = Named<CrossEntropyKind>("--cross-entropy", "Logits and loss computation");

    public Option<bool> Compile { get; } = new("--compile") { Description = "torch.compile." };

    public Option<bool> Packed { get; } = new("--packed") { Description = "Sequences packed to exactly --seq tokens." };

    public Option<int?> LoraRank { get; } = new("--lora-r") { Description = "LoRA rank r." };

    public Option<double?> LoraAlpha { get; } = new("--lora-alpha") { Description = "LoRA alpha (does not change memory)." };

    public Option<string?> LoraTargets { get; } = new("--lora-targets") { Description = "all-linear, attention, or module names: q_proj,v_proj." };

    public Option<bool> Dora { get; } = new("--dora") { Description = "DoRA: add a trainable magnitude vector per adapted module." };

    public Option<string?> KvCacheDtype { get; } = new("--kv-cache-dtype") { Description = "KV cache type: fp16, bf16, fp8, q8_0, q4_0, …" };

    public Option<string?> VCacheDtype { get; } = new("--v-cache-dtype") { Description = "V cache type where it differs from K (llama.cpp -ctv)." };

    public Option<int?> Gpus { get; } = new("--gpus") { Description = "Number of GPUs." };

    public Option<int?> Zero { get; } = new("--zero") { Description = "DeepSpeed ZeRO stage 0-3." };

    public Option<string?> Fsdp { get; } = Named<FsdpMode>("--fsdp", "FSDP sharding");

    public Option<int?> Tp { get; } = new("--tp") { Description = "Tensor-parallel degree." };

    public Option<int?> Pp { get; } = new("--pp") { Description = "Pipeline-parallel degree." };

    public Option<int?> Cp { get; } = new("--cp") { Description = "Context-parallel degree." };

    public Option<string?> Offload { get; } = Named<OffloadMode>("--offload", "What moves to host memory");

    public Option<string?> Gpu { get; } = new("--gpu") { Description = "GPU catalog id (h100-80gb, rtx-4090, …) or cpu." };

    public Option<double?> GpuMemoryUtilization { get; } = new("--gpu-memory-utilization") { Description = "vLLM/SGLang fraction of GPU memory to use." };

    public Option<int?> MaxModelLen { get; } = new("--max-model-len") { Description = "vLLM/SGLang maximum sequence length." };

    public Option<int?> MaxNumSeqs { get; } = new("--max-num-seqs") { Description = "vLLM maximum concurrent sequences." };

    public Option<int?> MaxNumBatchedTokens { get; } = new("--max-num-batched-tokens") { Description = "vLLM tokens per scheduler step." };

    public Option<int?> BlockSize { get; } = new("--block-size") { Description = "vLLM KV block size in tokens." };

    public Option<int?> NCtx { get; } = new("--n-ctx") { Description = "llama.cpp -c: KV cells shared by all sequences." };

    public Option<int?> NBatch { get; } = new("--n-batch") { Description = "llama.cpp -b." };

    public Option<int?> NUbatch { get; } = new("--n-ubatch") { Description = "llama.cpp -ub." };

    public Option<int?> NSeq { get; } = new("--n-seq", "--parallel") { Description = "llama.cpp -np: parallel sequences." };

    public Option<int?> NGpuLayers { get; } = new("--n-gpu-layers", "-ngl") { Description = "llama.cpp layers offloaded to the GPU." };

    public Option<string?> FlashAttn { get; } = new("--flash-attn") { Description = "llama.cpp flash attention: on or off." };

    public Option<bool> NoMmap { get; } = new("--no-mmap") { Description = "llama.cpp: load weights without mmap." };

    public Option<string?> EngineVersion { get; } = new("--engine-version") { Description = "Engine version where its accounting changed: vLLM 0.6.4 (V0), llama.cpp b4823; default: current." };

    public void AddTo(Command command)
    {
        command.Arguments.Add(Model);
        foreach (Option option in new Option[]
        {
            ScenarioFile, Mode, Engine, Weights, Precision, Optimizer, OptimizerInBackward, Batch, Seq, GradientAccumulation, GradientCheckpointing,
            Attention, CrossEntropy, Compile, Packed, LoraRank, LoraAlpha, LoraTargets, Dora, KvCacheDtype, VCacheDtype, Gpus, Zero, Fsdp, Tp, Pp,
            Cp, Offload, Gpu, GpuMemoryUtilization, MaxModelLen, MaxNumSeqs, MaxNumBatchedTokens, BlockSize, NCtx, NBatch, NUbatch, NSeq,
            NGpuLayers, FlashAttn, NoMmap, EngineVersion,
        })
        {
            command.Options.Add(option);
        }
    }

    /// <summary>The scenario: the file's (when given), with every given flag applied over it.</summary>
    public Scenario Read(ParseResult parse)
    {
        string? file = parse.GetValue(ScenarioFile);
        string? model = parse.GetValue(Model);
        Scenario scenario = file is not null
            ? ScenarioReader.ReadFile(file)
            : new Scenario { Model = new ModelReference.Named(model ?? throw new FormatException("Give a MODEL (catalog id, alias, path or count) or --scenario FILE.")) };
        if (file is not null && model is not null)
        {
            scenario = scenario with { Model = new ModelReference.Named(model), BaseDirectory = null };
        }

        scenario = scenario with
        {
            Mode = Enum(parse, Mode, scenario.Mode),
            Engine = Enum(parse, Engine, file is null && IsGguf(model) ? Workloads.Engine.LlamaCpp : scenario.Engine),
            Weights = Checked(parse.GetValue(Weights), "--weights", n => Numerics.WeightFormats.TryParse(n, out _)) ?? scenario.Weights,
            Precision = parse.GetValue(Precision) is null ? scenario.Precision : Enum(parse, Precision, default(Precision)),
            Optimizer = parse.GetValue(Optimizer) is null ? scenario.Optimizer : Enum(parse, Optimizer, default(OptimizerKind)),
            OptimizerInBackward = Flag(parse, OptimizerInBackward) ?? scenario.OptimizerInBackward,
            Batch = Positive(parse, Batch, "--batch") ?? scenario.Batch,
            Seq = Positive(parse, Seq, "--seq") ?? scenario.Seq,
            GradientAccumulation = Positive(parse, GradientAccumulation, "--gradient-accumulation") ?? scenario.GradientAccumulation,
            GradientCheckpointing = Enum(parse, GradientCheckpointing, scenario.GradientCheckpointing),
            Attention = Enum(parse, Attention, scenario.Attention),
            CrossEntropy = Enum(parse, CrossEntropy, scenario.CrossEntropy),
            Compile = Flag(parse, Compile) ?? scenario.Compile,
            Packed = Flag(parse, Packed) ?? scenario.Packed,
            Lora = ReadLora(parse, scenario),
            KvCacheDtype = Checked(parse.GetValue(KvCacheDtype), "--kv-cache-dtype", n => Numerics.DataTypes.TryParse(n, out _)) ?? scenario.KvCacheDtype,
            VCacheDtype = Checked(parse.GetValue(VCacheDtype), "--v-cache-dtype", n => Numerics.DataTypes.TryParse(n, out _)) ?? scenario.VCacheDtype,
            Parallel = scenario.Parallel with
            {
                Gpus = Positive(parse, Gpus, "--gpus") ?? scenario.Parallel.Gpus,
                Zero = parse.GetValue(Zero) is int zero ? zero is >= 0 and <= 3 ? zero : throw new FormatException("--zero must be 0, 1, 2 or 3.") : scenario.Parallel.Zero,
                Fsdp = Enum(parse, Fsdp, scenario.Parallel.Fsdp),
                Tp = Positive(parse, Tp, "--tp") ?? scenario.Parallel.Tp,
                Pp = Positive(parse, Pp, "--pp") ?? scenario.Parallel.Pp,
                Cp = Positive(parse, Cp, "--cp") ?? scenario.Parallel.Cp,
                Offload = Enum(parse, Offload, scenario.Parallel.Offload),
            },
            EngineOptions = scenario.EngineOptions with
            {
                GpuMemoryUtilization = parse.GetValue(GpuMemoryUtilization) is double u
                    ? u is > 0 and <= 1 ? u : throw new FormatException("--gpu-memory-utilization must be in (0, 1].")
                    : scenario.EngineOptions.GpuMemoryUtilization,
                MaxModelLen = Positive(parse, MaxModelLen, "--max-model-len") ?? scenario.EngineOptions.MaxModelLen,
                MaxNumSeqs = Positive(parse, MaxNumSeqs, "--max-num-seqs") ?? scenario.EngineOptions.MaxNumSeqs,
                MaxNumBatchedTokens = Positive(parse, MaxNumBatchedTokens, "--max-num-batched-tokens") ?? scenario.EngineOptions.MaxNumBatchedTokens,
                BlockSize = Positive(parse, BlockSize, "--block-size") ?? scenario.EngineOptions.BlockSize,
                NCtx = NonNegative(parse, NCtx, "--n-ctx") ?? scenario.EngineOptions.NCtx,
                NBatch = Positive(parse, NBatch, "--n-batch") ?? scenario.EngineOptions.NBatch,
                NUbatch = Positive(parse, NUbatch, "--n-ubatch") ?? scenario.EngineOptions.NUbatch,
                NSeq = Positive(parse, NSeq, "--n-seq") ?? scenario.EngineOptions.NSeq,
                NGpuLayers = NonNegative(parse, NGpuLayers, "--n-gpu-layers") ?? scenario.EngineOptions.NGpuLayers,
                FlashAttn = parse.GetValue(FlashAttn) switch
                {
                    null => scenario.EngineOptions.FlashAttn,
                    "on" or "true" or "1" => true,
                    "off" or "false" or "0" => false,
                    string other => throw new FormatException($"--flash-attn '{other}' must be on or off."),
                },
                Mmap = Flag(parse, NoMmap) is true ? false : scenario.EngineOptions.Mmap,
                Version = parse.GetValue(EngineVersion) ?? scenario.EngineOptions.Version,
            },
            Gpu = parse.GetValue(Gpu) ?? scenario.Gpu,
        };
        return scenario;
    }

    /// <summary>A GGUF file or a GGUF repo quant (<c>org/name:Q4_K_M</c>) is run by llama.cpp unless --engine says otherwise.</summary>
    private static bool IsGguf(string? model) =>
        model is not null && (model.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase)
            || (model.Contains('/', StringComparison.Ordinal) && model.Contains(':', StringComparison.Ordinal) && !Path.IsPathRooted(model)));

    private LoraSettings? ReadLora(ParseResult parse, Scenario scenario)
    {
        int? rank = Positive(parse, LoraRank, "--lora-r");
        string? targets = parse.GetValue(LoraTargets);
        bool? dora = Flag(parse, Dora);
        double? alpha = parse.GetValue(LoraAlpha);
        if (rank is null && targets is null && dora is null && alpha is null)
        {
            return scenario.Lora;
        }

        LoraSettings current = scenario.Lora ?? LoraSettings.Default;
        return current with
        {
            Rank = rank ?? current.Rank,
            Alpha = alpha ?? current.Alpha,
            Targets = targets is null ? current.Targets : Workloads.LoraTargets.Parse(targets),
            Dora = dora ?? current.Dora,
        };
    }

    private static Option<string?> Named<T>(string name, string what)
        where T : struct, System.Enum =>
        new(name) { Description = $"{what}: {string.Join(", ", Names.All<T>())}." };

    private static T Enum<T>(ParseResult parse, Option<string?> option, T fallback)
        where T : struct, System.Enum
    {
        string? text = parse.GetValue(option);
        if (text is null)
        {
            return fallback;
        }

        return Names.TryParse(text, out T value)
            ? value
            : throw new FormatException($"{option.Name} '{text}' is not one of {string.Join(", ", Names.All<T>())}.");
    }

    private static bool? Flag(ParseResult parse, Option<bool> option) => parse.GetResult(option) is { Implicit: false } ? parse.GetValue(option) : null;

    private static int? Positive(ParseResult parse, Option<int?> option, string name) =>
        parse.GetValue(option) is int value ? value >= 1 ? value : throw new FormatException($"{name} must be at least 1, got {value}.") : null;

    private static int? NonNegative(ParseResult parse, Option<int?> option, string name) =>
        parse.GetValue(option) is int value ? value >= 0 ? value : throw new FormatException($"{name} must not be negative, got {value}.") : null;

    private static string? Checked(string? value, string name, Func<string, bool> known) =>
        value is null || known(value) ? value : throw new FormatException($"{name} '{value}' is not a known format.");
}
