using System.Text.Json;
using LlmMemory.Estimation;
using LlmMemory.Estimation.Engines;
using LlmMemory.Workloads;

namespace LlmMemory.Tests.Estimation;

/// <summary>
/// Every option is used or refused: for each kind of estimate, each scenario field set away from its default either changes
/// the estimate (a component, its formula, a fact, a note) or is refused with a message naming the field. An option that
/// changes nothing and says nothing is the bug this pins.
/// </summary>
public sealed class OptionsAreUsedOrRefusedTests
{
    /// <summary>One base per estimator path (small models, so each estimate is a few milliseconds).</summary>
    public static TheoryData<string> Bases => new()
    {
        """ "model": "smollm2-135m" """,
        """ "model": "smollm2-135m", "mode": "training" """,
        """ "model": "smollm2-135m", "mode": "lora" """,
        """ "model": "smollm2-135m", "mode": "training", "parallel": {"gpus": 2, "fsdp": "full_shard"} """,
        """ "model": "smollm2-135m", "engine": "vllm", "gpu": "h100-80gb" """,
        """ "model": "smollm2-135m", "engine": "sglang", "gpu": "h100-80gb" """,
        """ "model": "smollm2-135m", "engine": "llama.cpp" """,
        """ "model": "1B" """,
        """ "model": "1B", "mode": "training" """,
        // The replay's other programs: GPT-2-style blocks (ClassicProgram) and BERT (BertProgram).
        """ "model": "gpt2" """,
        """ "model": "gpt2", "mode": "training" """,
        """ "model": "bert-large-uncased", "mode": "training" """,
    };

    /// <summary>A value away from the default for every field (with what a field needs beside it).</summary>
    private static readonly (string Field, string Json)[] Changes =
    [
        ("weights", """ "weights": "int8" """),
        ("precision", """ "precision": "fp32" """),
        ("optimizer", """ "optimizer": "sgd" """),
        ("optimizer_in_backward", """ "optimizer_in_backward": true """),
        ("batch", """ "batch": 2 """),
        ("seq", """ "seq": 1024 """),
        ("gradient_accumulation", """ "gradient_accumulation": 4 """),
        ("gradient_checkpointing", """ "gradient_checkpointing": "full" """),
        ("attention", """ "attention": "eager" """),
        ("cross_entropy", """ "cross_entropy": "chunked" """),
        ("compile", """ "compile": true """),
        ("packed", """ "packed": true """),
        ("lora", """ "lora": {"r": 8} """),
        ("kv_cache_dtype", """ "kv_cache_dtype": "fp8" """),
        ("v_cache_dtype", """ "v_cache_dtype": "q8_0" """),
        ("parallel.gpus", """ "parallel": {"gpus": 4} """),
        ("parallel.zero", """ "parallel": {"zero": 3} """),
        ("parallel.fsdp", """ "parallel": {"fsdp": "shard_grad_op"} """),
        ("parallel.tp", """ "parallel": {"gpus": 2, "tp": 2} """),
        ("parallel.pp", """ "parallel": {"gpus": 2, "pp": 2} """),
        ("parallel.cp", """ "parallel": {"gpus": 2, "cp": 2} """),
        ("parallel.schedule", """ "parallel": {"gpus": 2, "pp": 2, "schedule": "interleaved-1f1b"} """),
        ("parallel.offload", """ "parallel": {"offload": "optimizer"} """),
        ("engine_options.gpu_memory_utilization", """ "engine_options": {"gpu_memory_utilization": 0.5} """),
        ("engine_options.max_model_len", """ "engine_options": {"max_model_len": 4096} """),
        ("engine_options.max_num_seqs", """ "engine_options": {"max_num_seqs": 8} """),
        ("engine_options.max_num_batched_tokens", """ "engine_options": {"max_num_batched_tokens": 1024} """),
        ("engine_options.block_size", """ "engine_options": {"block_size": 32} """),
        ("engine_options.kv_cache_memory", """ "engine_options": {"kv_cache_memory": 4294967296} """),
        ("engine_options.n_ctx", """ "engine_options": {"n_ctx": 4096} """),
        ("engine_options.n_batch", """ "engine_options": {"n_batch": 256} """),
        ("engine_options.n_ubatch", """ "engine_options": {"n_ubatch": 128} """),
        ("engine_options.n_seq", """ "engine_options": {"n_seq": 2} """),
        ("engine_options.n_gpu_layers", """ "engine_options": {"n_gpu_layers": 4} """),
        ("engine_options.flash_attn", """ "engine_options": {"flash_attn": false} """),
        ("engine_options.mmap", """ "engine_options": {"mmap": false} """),
        ("engine_options.version", """ "engine_options": {"version": "0.6.4"} """),
        ("engine_options.pp_layer_partition", """ "engine_options": {"pp_layer_partition": "10,20"} """),
        ("new_tokens", """ "new_tokens": 256 """),
        ("alloc_conf", """ "alloc_conf": "expandable_segments:True" """),
        ("foreach", """ "foreach": false """),
        ("fused", """ "fused": true """),
        ("kbit_preparation", """ "kbit_preparation": true """),
        ("use_cache", """ "use_cache": false """),
        ("bitsandbytes_version", """ "bitsandbytes_version": "0.42.0" """),
        ("bitsandbytes_converter", """ "bitsandbytes_converter": "lightning" """),
        ("bnb_4bit_use_double_quant", """ "bnb_4bit_use_double_quant": false """),
        ("custom_sharded_layers", """ "custom_sharded_layers": ["tok_embeddings"] """),
        ("hold_previous_logits", """ "hold_previous_logits": true """),
        ("model_code", """ "model_code": "litgpt" """),
    ];

    [Theory]
    [MemberData(nameof(Bases))]
    public void Each_field_changes_the_estimate_or_is_refused_naming_a_field(string base_)
    {
        string baseline = Fingerprint(Estimate(base_));
        var silent = new List<string>();
        foreach ((string field, string json) in Changes)
        {
            if (base_.Contains($"\"{field.Split('.')[0]}\"", StringComparison.Ordinal))
            {
                continue;
            }

            try
            {
                if (Fingerprint(Estimate($"{base_}, {json}")) == baseline)
                {
                    silent.Add(field);
                }
            }
            catch (ModelFormatException refused)
            {
                Assert.NotNull(refused.Key);
            }
        }

        Assert.True(silent.Count == 0, $"{base_.Trim()}: these change nothing and are not refused: {string.Join(", ", silent)}");
    }

    private static MemoryEstimate Estimate(string fields)
    {
        using JsonDocument document = JsonDocument.Parse($"{{{fields}}}");
        return MemoryEstimator.Estimate(ScenarioDraft.FromJson(document.RootElement, "test").Read());
    }

    /// <summary>Everything an estimate says: components with their formulas, facts, notes, comparisons, the timeline, the peak and the devices.</summary>
    private static string Fingerprint(MemoryEstimate e) => string.Join("\n",
    [
        .. e.Components.Select(c => $"{c.Name} {c.Bytes.Bytes} {c.Residence} {c.Formula}"),
        .. e.Facts.Select(f => $"{f.Key} {f.Value}"),
        .. e.Notes,
        .. e.Comparisons.Select(c => $"{c.Name} {c.Bytes.Bytes}"),
        .. e.Timeline.Select(t => $"{t.Phase} {t.Bytes.Bytes}"),
        e.PeakPhase,
        e.DeviceCount.ToString(System.Globalization.CultureInfo.InvariantCulture),
    ]);
}
