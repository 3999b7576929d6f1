using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using LlmMemory.Workloads;
using LlmMemory.Workloads.StackConfigs;

namespace LlmMemory.Cli.Commands;

/// <summary>
/// The flags that describe a scenario. Each writes one field of docs/scenario.md over the <c>--scenario</c> file (or an empty
/// scenario), as the user typed it; <see cref="ScenarioDraft.Read"/> then checks the result by the same rules as a file or
/// an API body, so a bad value gets the same message wherever it came from (naming the flag that set it).
/// </summary>
internal sealed class ScenarioOptions
{
    private readonly List<(Option Option, string Path, Kind Kind)> _fields = [];

    public ScenarioOptions()
    {
        Text("--mode", "mode", $"What is done with the model: {Choices<Mode>()}.");
        Text("--engine", "engine", $"Whose memory accounting to follow: {Choices<Engine>()}.");
        Text("--weights", "weights", "Weight format: bf16, fp16, fp32, fp8, int8, nf4, fp4, gptq-int4, awq-int4, mxfp4, q8_0, q4_k_m, …");
        Text("--precision", "precision", $"Training regime: {Choices<Precision>()}.");
        Text("--optimizer", "optimizer", $"Optimizer whose states are held: {Choices<OptimizerKind>()}.");
        Switch("--optimizer-in-backward", "optimizer_in_backward", "Step each parameter during backward and free its gradient.");
        Integer(["--batch"], "batch", "Micro-batch size (llama.cpp: parallel sequences).");
        Integer(["--seq", "--context"], "seq", "Tokens per sequence, or context length for inference (vLLM/SGLang: max_model_len unless --max-model-len).");
        Integer(["--gradient-accumulation"], "gradient_accumulation", "Micro-batches per optimizer step.");
        Text("--gradient-checkpointing", "gradient_checkpointing", $"Activation recomputation: {Choices<Checkpointing>()}.");
        Text("--attention", "attention", $"Attention kernel: {Choices<AttentionKernel>()}.");
        Text("--cross-entropy", "cross_entropy", $"Logits and loss computation: {Choices<CrossEntropyKind>()}.");
        Switch("--compile", "compile", "torch.compile.");
        Switch("--packed", "packed", "Sequences packed to exactly --seq tokens.");
        Integer(["--lora-r"], "lora.r", $"LoRA rank r (default {LoraSettings.DefaultRank}).");
        Add(new Option<string?>("--lora-alpha") { Description = "LoRA alpha (does not change memory)." }, "lora.alpha", Kind.Number);
        Add(new Option<string?>("--lora-targets") { Description = "all-linear, attention, or module names: q_proj,v_proj." }, "lora.targets", Kind.Targets);
        Switch("--dora", "lora.dora", "DoRA: add a trainable magnitude vector per adapted module.");
        Text("--kv-cache-dtype", "kv_cache_dtype", $"KV cache type: {string.Join(", ", ScenarioReader.KvCacheTypeNames)}.");
        Text("--v-cache-dtype", "v_cache_dtype", "V cache type where it differs from K (llama.cpp -ctv).");
        Integer(["--gpus"], "parallel.gpus", "Number of GPUs (default: tp × pp × cp).");
        Integer(["--zero"], "parallel.zero", "DeepSpeed ZeRO stage 0-3.");
        Text("--fsdp", "parallel.fsdp", $"FSDP sharding: {Choices<FsdpMode>()}.");
        Integer(["--tp"], "parallel.tp", "Tensor-parallel degree.");
        Integer(["--pp"], "parallel.pp", "Pipeline-parallel degree.");
        Text("--pp-schedule", "parallel.schedule", $"Pipeline schedule (torchtitan): {Choices<PipelineSchedule>()}.");
        Integer(["--cp"], "parallel.cp", "Context-parallel degree.");
        Text("--offload", "parallel.offload", $"What moves to host memory: {Choices<OffloadMode>()}.");
        Text("--gpu", "gpu", "GPU catalog id or spelling (h100-80gb, \"RTX 4090\", …) or cpu.");
        Add(new Option<string?>("--gpu-memory-utilization") { Description = "vLLM/SGLang fraction of GPU memory to use." }, "engine_options.gpu_memory_utilization", Kind.Number);
        Integer(["--max-model-len"], "engine_options.max_model_len", "vLLM/SGLang maximum sequence length.");
        Integer(["--max-num-seqs"], "engine_options.max_num_seqs", "vLLM maximum concurrent sequences.");
        Integer(["--max-num-batched-tokens"], "engine_options.max_num_batched_tokens", "vLLM tokens per scheduler step.");
        Integer(["--block-size"], "engine_options.block_size", "vLLM KV block size in tokens.");
        Integer(["--kv-cache-memory"], "engine_options.kv_cache_memory", "vLLM KV pool per GPU in bytes (replaces --gpu-memory-utilization).");
        Text("--pp-layer-partition", "engine_options.pp_layer_partition", "vLLM layers per pipeline stage (VLLM_PP_LAYER_PARTITION), e.g. 20,12.");
        Integer(["--n-ctx"], "engine_options.n_ctx", "llama.cpp -c: KV cells shared by all sequences.");
        Integer(["--n-batch"], "engine_options.n_batch", "llama.cpp -b.");
        Integer(["--n-ubatch"], "engine_options.n_ubatch", "llama.cpp -ub.");
        Integer(["--n-seq", "--parallel"], "engine_options.n_seq", "llama.cpp -np: parallel sequences.");
        Integer(["--n-gpu-layers", "-ngl"], "engine_options.n_gpu_layers", "llama.cpp layers offloaded to the GPU.");
        Add(new Option<string?>("--flash-attn") { Description = "llama.cpp flash attention: on or off." }, "engine_options.flash_attn", Kind.OnOff);
        Add(new Option<bool>("--no-mmap") { Description = "llama.cpp: load weights without mmap." }, "engine_options.mmap", Kind.Off);
        Integer(["--new-tokens"], "new_tokens", "transformers generate(): tokens generated after a prompt of --seq minus this many.");
        Text("--cache", "cache", $"generate()'s KV cache: {Choices<GenerationCache>()}.");
        Text("--alloc-conf", "alloc_conf", "PyTorch caching-allocator settings, as PYTORCH_CUDA_ALLOC_CONF holds them.");
        Switch("--foreach", "foreach", "torch.optim's foreach implementation (--foreach false: the single-tensor loop).");
        Switch("--fused", "fused", "torch.optim's fused AdamW.");
        Switch("--use-cache", "use_cache", "The training forward builds a KV cache (--use-cache false: model.config.use_cache = False, or model code that never caches in training, such as LitGPT's).");
        Switch("--hold-previous-logits", "hold_previous_logits", "The training loop keeps the previous micro-batch's logits, and through them its graph, until the next forward returns (LitGPT's loops).");
        Text("--bitsandbytes-version", "bitsandbytes_version", "bitsandbytes release, where it changed the training step: before 0.43.2 each 4-bit matmul keeps its input for backward; default: current.");
        Text("--bitsandbytes-converter", "bitsandbytes_converter", "Who converts the linears to bitsandbytes 4-bit: transformers (keeps the head) or lightning (every nn.Linear, quantized from fp16; LitGPT).");
        Text("--model-code", "model_code", "Whose module code the pytorch engine runs in training: transformers (default) or litgpt (LitGPT's GPT and LoRA modules).");
        Switch("--bnb-4bit-use-double-quant", "bnb_4bit_use_double_quant", "bitsandbytes' double quantization of the 4-bit absmax (--bnb-4bit-use-double-quant false: fp32 absmax per 64 weights); default: nf4 with, fp4 without.");
        Switch("--kbit-preparation", "kbit_preparation", "PEFT's prepare_model_for_kbit_training on a k-bit base (QLoRA): unquantized parameters cast to fp32.");
        Text("--engine-version", "engine_options.version", "Engine version where its accounting changed: vLLM 0.6.4 (V0) to 0.19 (docs/vllm.md), SGLang 0.4.7.post1 to 0.5.4 (docs/sglang.md), llama.cpp b4823, transformers 4.x to 5.17 (its causal-LM loss in training), torchtune 0.1.1 (how a QLoRA model is built before training); default: current.");
    }

    private enum Kind
    {
        /// <summary>The text as typed.</summary>
        Text,

        /// <summary>A whole number when it reads as one, else the text (the reader names the field and says what it expected).</summary>
        Integer,

        /// <summary>A number when it reads as one, else the text.</summary>
        Number,

        /// <summary>A presence flag: true.</summary>
        Switch,

        /// <summary>A presence flag that sets false (<c>--no-mmap</c>).</summary>
        Off,

        /// <summary><c>on</c>/<c>off</c> (or true/false, 1/0) as a boolean, else the text.</summary>
        OnOff,

        /// <summary>A preset name, or a comma-separated list of module names as a list.</summary>
        Targets,
    }

    public Argument<string?> Model { get; } = new("model") { Description = "Catalog id or alias, a .gguf / .safetensors / index / config.json path, a checkpoint folder, a Hugging Face id org/name[@rev][:quant], or a count such as 7B.", Arity = ArgumentArity.ZeroOrOne };

    public Option<string?> ScenarioFile { get; } = new("--scenario") { Description = "Read the scenario from a JSON file (docs/scenario.md); flags override it." };

    public Option<string[]> ConfigFiles { get; } = new("--config")
    {
        Description = "Read the settings of an Axolotl, torchtune, TrainingArguments/SFTConfig, DeepSpeed or accelerate config file (repeatable; later files and flags override earlier ones).",
        Arity = ArgumentArity.OneOrMore,
    };

    public void AddTo(Command command)
    {
        ArgumentNullException.ThrowIfNull(command);
        command.Arguments.Add(Model);
        command.Options.Add(ScenarioFile);
        command.Options.Add(ConfigFiles);
        foreach ((Option option, _, _) in _fields)
        {
            command.Options.Add(option);
        }
    }

    /// <summary>The scenario: the file's (when given), with every given flag written over it, checked once.</summary>
    public Scenario Read(ParseResult parse) => Input(parse).Scenario;

    /// <summary>The scenario, with notes on what each <c>--config</c> file gave it (used, not modelled, not used).</summary>
    public ScenarioInput Input(ParseResult parse)
    {
        ArgumentNullException.ThrowIfNull(parse);
        StackConfig[] configs = [.. (parse.GetValue(ConfigFiles) ?? []).Select(StackConfig.Read)];
        ScenarioDraft draft = Draft(parse, configs);
        Scenario scenario = draft.Read();
        return new ScenarioInput(scenario, [.. configs.SelectMany(c => c.Notes(draft))]);
    }

    /// <summary>
    /// The unchecked scenario: the scenario file's fields, then each config file's, then MODEL and the flags the user typed,
    /// each written over what came before.
    /// </summary>
    private ScenarioDraft Draft(ParseResult parse, StackConfig[] configs)
    {
        string? file = parse.GetValue(ScenarioFile);
        string? model = parse.GetValue(Model);
        ScenarioDraft draft = file is not null ? ScenarioDraft.FromFile(file) : ScenarioDraft.Empty("command line");
        foreach (StackConfig config in configs)
        {
            config.ApplyTo(draft);
        }

        if (model is not null)
        {
            draft.Set("model", model, "MODEL");
        }
        else if (!draft.Has("model"))
        {
            throw new FormatException(configs.Length > 0
                ? $"Give a MODEL (catalog id, alias, path or count): {string.Join(", ", configs.Select(c => c.File))} names none this tool can read."
                : "Give a MODEL (catalog id, alias, path or count) or --scenario FILE.");
        }

        foreach ((Option option, string path, Kind kind) in _fields)
        {
            if (Value(parse, option, kind) is { } value)
            {
                // The origin is the spelling typed (--context, not its alias --seq), so a message names what the user wrote.
                draft.Set(path, value, parse.GetResult(option)?.IdentifierToken?.Value ?? option.Name);
            }
        }

        // A GGUF file or a GGUF repo quant (org/name:Q4_K_M) named on the command line is run by llama.cpp unless the engine is named.
        if (file is null && IsGguf(model) && !draft.Has("engine"))
        {
            draft.Set("engine", Names.Of(Engine.LlamaCpp), "MODEL");
        }

        return draft;
    }

    private static JsonNode? Value(ParseResult parse, Option option, Kind kind)
    {
        if (option is Option<bool> flag)
        {
            // Only a flag the user typed counts (an absent switch must not undo a true in the scenario file).
            return parse.GetResult(flag) is { Implicit: false } ? JsonValue.Create(parse.GetValue(flag) != (kind == Kind.Off)) : null;
        }

        string? text = parse.GetValue((Option<string?>)option);
        return text is null ? null : kind switch
        {
            Kind.Integer when long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long n) => JsonValue.Create(n),
            Kind.Number when double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double d) && double.IsFinite(d) => JsonValue.Create(d),
            Kind.OnOff when text.Trim().ToLowerInvariant() is "on" or "true" or "1" => JsonValue.Create(true),
            Kind.OnOff when text.Trim().ToLowerInvariant() is "off" or "false" or "0" => JsonValue.Create(false),
            Kind.Targets when text.Trim() is not ("all-linear" or "attention") =>
                new JsonArray([.. text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(m => (JsonNode)JsonValue.Create(m))]),
            _ => JsonValue.Create(text),
        };
    }

    private void Text(string name, string path, string description) =>
        Add(new Option<string?>(name) { Description = description }, path, Kind.Text);

    private void Integer(string[] names, string path, string description) =>
        Add(new Option<string?>(names[0], names[1..]) { Description = description }, path, Kind.Integer);

    private void Switch(string name, string path, string description) =>
        Add(new Option<bool>(name) { Description = description }, path, Kind.Switch);

    private void Add(Option option, string path, Kind kind) => _fields.Add((option, path, kind));

    private static string Choices<T>()
        where T : struct, Enum => string.Join(", ", Names.All<T>());

    /// <summary>A GGUF file or a GGUF repo quant (<c>org/name:Q4_K_M</c>).</summary>
    private static bool IsGguf(string? model) =>
        model is not null && (model.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase)
            || (model.Contains('/', StringComparison.Ordinal) && model.Contains(':', StringComparison.Ordinal) && !Path.IsPathRooted(model)));
}

/// <summary>A scenario as the options read it, with the notes its config files add (what each key did).</summary>
internal sealed record ScenarioInput(Scenario Scenario, IReadOnlyList<string> Notes);
