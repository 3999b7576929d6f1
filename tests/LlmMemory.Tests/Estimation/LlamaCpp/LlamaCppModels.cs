using System.Text.Json;
using LlmMemory.Estimation;
using LlmMemory.Estimation.Engines;
using LlmMemory.Formats.HuggingFace;
using LlmMemory.Hardware;
using LlmMemory.Models;
using LlmMemory.Numerics;
using LlmMemory.Workloads;

namespace LlmMemory.Tests.Estimation.LlamaCpp;

/// <summary>The models of the llama.cpp measurements, and a shortcut to estimate them.</summary>
internal static class LlamaCppModels
{
    /// <summary>
    /// EleutherAI/pythia-2.8b config.json as the ggml-ci cases carry it (data/validation/cases.jsonl, llamacpp-ci-*): the ci
    /// log prints n_embd 2560, n_layer 32, n_head 32, n_ff 10240, n_vocab 50304, n_rot 20.
    /// </summary>
    public const string Pythia28B = """
        {"architectures": ["GPTNeoXForCausalLM"], "hidden_size": 2560, "intermediate_size": 10240, "num_attention_heads": 32,
         "num_hidden_layers": 32, "vocab_size": 50304}
        """;

    /// <summary>The synthetic tiny llama of data/validation/llamacpp-cases.jsonl (GGUF written by research/llamacpp/tools/gguf_writer.py).</summary>
    public const string TinyLlama = """
        {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 256, "intermediate_size": 768,
         "num_hidden_layers": 4, "num_attention_heads": 8, "num_key_value_heads": 2, "head_dim": 32, "vocab_size": 32000,
         "tie_word_embeddings": false, "max_position_embeddings": 4096}
        """;

    /// <summary>HuggingFaceTB/SmolLM2-135M's shape, as data/validation/llamacpp-cases.jsonl carries it.</summary>
    public const string SmolLm2 = """
        {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 576, "intermediate_size": 1536,
         "num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3, "vocab_size": 49152,
         "tie_word_embeddings": true, "max_position_embeddings": 8192}
        """;

    public static ModelArchitecture Read(string config)
    {
        using JsonDocument document = JsonDocument.Parse(config);
        return ConfigJsonReader.Read(document.RootElement, "test config");
    }

    public static Scenario Scenario(string config, string? gpu = "cpu", string? weights = "f16") => new()
    {
        Model = new ModelReference.InlineConfig(JsonDocument.Parse(config).RootElement.Clone()),
        Engine = Engine.LlamaCpp,
        Weights = weights is null ? null : WeightFormats.Parse(weights),
        Gpu = gpu is null ? null : GpuCatalog.Find(gpu),
    };

    public static MemoryEstimate Estimate(Scenario scenario) => MemoryEstimator.Estimate(scenario);

    public static MemoryComponent Component(MemoryEstimate estimate, string name) => Assert.Single(estimate.Components, c => c.Name == name);

    /// <summary>A size llama.cpp printed in MiB with two decimals: the bytes lie within ±0.005 MiB of it.</summary>
    public static void Printed(double mebibytes, long bytes) => Assert.InRange(bytes, (long)((mebibytes - 0.005) * 1048576), (long)((mebibytes + 0.005) * 1048576));
}
