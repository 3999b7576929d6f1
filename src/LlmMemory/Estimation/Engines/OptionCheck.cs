using LlmMemory.Workloads;

namespace LlmMemory.Estimation.Engines;

/// <summary>
/// Every option is used or refused: a field the input names that the estimator's path does not read is an error naming the
/// field and where it came from — unless it holds the default, which changes nothing either way.
/// </summary>
internal static class OptionCheck
{
    /// <exception cref="ModelFormatException">The first field (in path order) the path does not use.</exception>
    public static void Check(Scenario scenario, EstimatorPath path)
    {
        foreach (string field in scenario.Given.Paths.Order(StringComparer.Ordinal))
        {
            bool lora = field == "lora" || field.StartsWith("lora.", StringComparison.Ordinal);
            bool used = lora ? scenario.IsAdapterTraining && path.ReadsField(field) : path.ReadsField(field) || ScenarioFields.IsDefault(scenario, field);
            if (!used)
            {
                throw new ModelFormatException(scenario.Given.OriginOf(field), field,
                    $"is {ScenarioFields.Value(scenario, field)}, which {path.Name} does not use: {Hint(field, scenario)}.");
            }
        }
    }

    /// <summary>Where the field does apply, or why it cannot here.</summary>
    private static string Hint(string field, Scenario scenario) => field switch
    {
        _ when field == "lora" || field.StartsWith("lora.", StringComparison.Ordinal) => scenario.IsAdapterTraining
            ? "a bare parameter count has no layers to put adapters on; give a model id or config.json"
            : "LoRA settings need mode lora or qlora",
        "kv_cache_dtype" => "transformers keeps K and V in the compute type; the cache type is a llama.cpp, vLLM and SGLang setting",
        "weights" => "full training keeps its parameters in the training precision; give precision (fp32, mixed-bf16, bf16)",
        "v_cache_dtype" => "only llama.cpp stores V in its own type (-ctv)",
        "batch" when scenario.Engine is Engine.Vllm or Engine.Sglang =>
            "the engine sizes its KV pool from the GPU and the estimate answers how many requests fit (max_concurrency); engine_options.max_num_seqs caps them",
        "seq" or "batch" => "a bare parameter count has no layers to size activations or a KV cache; give a model id or config.json",
        "attention" or "compile" => "it is a setting of transformers and PyTorch training runs",
        "new_tokens" or "cache" when scenario.Engine is Engine.Transformers or Engine.Pytorch =>
            !scenario.IsTraining
                ? "a bare parameter count has no layers to replay generate() on; give a model id or config.json"
                : "generate() is an inference run (mode inference); a training step is one forward and backward over seq",
        "new_tokens" or "cache" => "it is a transformers generate() setting; serving engines are sized by max_model_len or n_ctx",
        "alloc_conf" when scenario.Engine is Engine.Vllm or Engine.Sglang or Engine.LlamaCpp => "it is a PyTorch allocator setting",
        "alloc_conf" => "PyTorch's allocator settings are replayed on one GPU (transformers, PyTorch); the sharded closed form and bare parameter counts have no allocator",
        "foreach" or "fused" => "they choose a torch.optim implementation in the single-GPU replay",
        "kbit_preparation" => "PEFT's prepare_model_for_kbit_training is replayed for QLoRA and k-bit LoRA on one GPU; the sharded closed form and bare parameter counts do not model its fp32 casts",
        "use_cache" => scenario.IsTraining
            ? "the training forward's KV cache is replayed on one GPU and for FSDP ranks; the sharded closed form counts no cache"
            : "it is the training forward's cache; an inference forward is replayed with use_cache=True",
        "bnb_4bit_use_double_quant" => "bitsandbytes' double quantization is replayed for transformers and PyTorch runs on one GPU",
        "bitsandbytes_converter" => "the converter of bitsandbytes 4-bit linears is replayed in training on one GPU",
        "hold_previous_logits" => !scenario.IsTraining ? "it is a training loop setting (mode training, lora or qlora)"
            : "a training loop that keeps the previous logits is replayed on one GPU (engine pytorch)",
        "model_code" => !scenario.IsTraining ? "it is replayed for training (mode training, lora or qlora)"
            : "LitGPT's module code is replayed in training on one GPU (engine pytorch)",
        "bitsandbytes_version" => "the bitsandbytes release changes the replayed training step of 4-bit weights on one GPU (QLoRA, LoRA on nf4 or fp4)",
        "custom_sharded_layers" => "torchtune's FSDP units of their own are replayed for FSDP ranks (full training under parallel.fsdp without tensor, pipeline or context parallelism)",
        "optimizer_in_backward" when scenario.IsTraining => "the sharded closed form does not model stepping in backward yet",
        "precision" or "optimizer" or "optimizer_in_backward" or "gradient_accumulation" or "gradient_checkpointing" or "cross_entropy" or "packed" =>
            !scenario.IsTraining ? "it is a training setting (mode training, lora or qlora)"
            : scenario.IsAdapterTraining ? "a bare parameter count has no layer shapes for the adapters and their states; give a model id or config.json"
            : "a bare parameter count has no layers for activations; give a model id or config.json",
        "parallel.tp" when scenario.Engine == Engine.LlamaCpp => "llama.cpp splits GPUs by layer (-sm layer); give parallel.gpus",
        "parallel.cp" when scenario.Engine is Engine.Vllm or Engine.Sglang => "context parallelism is not modelled for serving engines yet; use tp",
        "parallel.offload" when !scenario.IsTraining || scenario.Engine is Engine.LlamaCpp => "offload is a ZeRO/FSDP training setting",
        _ when field.StartsWith("parallel.", StringComparison.Ordinal) => scenario.IsTraining
            ? "a bare parameter count is sharded by ZeRO/FSDP rules only"
            : scenario.Engine is Engine.Vllm or Engine.Sglang or Engine.LlamaCpp
                ? "not a setting of this engine"
                : "transformers inference spreads whole layers over parallel.gpus (device_map=\"auto\"); tensor and pipeline parallel serving is vLLM's and SGLang's (tp, pp)",
        "engine_options.gpu_memory_utilization" or "engine_options.max_model_len" or "engine_options.block_size" => "it is a vLLM and SGLang setting",
        "engine_options.max_num_seqs" or "engine_options.max_num_batched_tokens" => "it is a vLLM setting",
        "engine_options.kv_cache_memory" => "it is vLLM's --kv-cache-memory",
        "engine_options.version" => "versions change the accounting of vLLM, SGLang and llama.cpp, transformers' causal-LM loss and torchtune's model build in training on one GPU",
        "engine_options.pp_layer_partition" => "it is vLLM's VLLM_PP_LAYER_PARTITION and SGLang's SGLANG_PP_LAYER_PARTITION",
        _ when field.StartsWith("engine_options.", StringComparison.Ordinal) => "it is a llama.cpp setting",
        _ => "it has no effect on this estimate",
    };
}
