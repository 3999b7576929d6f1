using LlmMemory.Estimation.LlamaCpp;
using LlmMemory.Numerics;

namespace LlmMemory.Tests.Estimation.LlamaCpp;

/// <summary>llama.cpp KV cache sizing (llama-context.cpp ctor, llama-kv-cache.cpp; memory-model.md §2.6).</summary>
public sealed class KvCacheTests
{
    /// <summary>A gemma3-shaped text model: sliding window 512, 5 sliding layers in every 6.</summary>
    private const string Gemma3Shape = """
        {"architectures": ["Gemma3ForCausalLM"], "model_type": "gemma3_text", "hidden_size": 640, "intermediate_size": 2048,
         "num_hidden_layers": 6, "num_attention_heads": 4, "num_key_value_heads": 1, "head_dim": 256, "vocab_size": 262144,
         "sliding_window": 512, "sliding_window_pattern": 6, "max_position_embeddings": 32768}
        """;

    [Fact]
    public void Qwen2_5_32B_at_32768_cells_in_q8_0_is_4352_MiB()
    {
        // llama.cpp issue 11200 log: "KV self size = 4352.00 MiB, K (q8_0): 2176.00 MiB, V (q8_0): 2176.00 MiB".
        // 64 layers × 32,768 cells × 2 × 1,024 × 34/32 B = 4,563,402,752 B.
        var model = LlmMemory.Catalog.ModelCatalog.All.Single(m => m.Alias == "qwen2.5-coder-32b").Architecture;
        KvCache kv = KvCache.For(model, 32768, 1, unified: true, padding: 256, ubatch: 512, DataTypes.Q8_0, DataTypes.Q8_0);
        Assert.Equal(4352L * 1048576, kv.Bytes);
    }

    [Fact]
    public void Parallel_sequences_of_a_split_cache_get_padded_cells_each()
    {
        // n_ctx_seq = PAD(n_ctx / n_seq_max, 256): -c 6000 -np 3 → PAD(6000, 256) = 6144, / 3 = 2048 cells × 3 streams;
        // -c 4096 -np 5 → PAD(819, 256) = 1024 × 5.
        var model = LlamaCppModels.Read(LlamaCppModels.TinyLlama);
        KvCache three = KvCache.For(model, 6000, 3, unified: false, padding: 256, ubatch: 512, DataTypes.F16, DataTypes.F16);
        KvCache five = KvCache.For(model, 4096, 5, unified: false, padding: 256, ubatch: 512, DataTypes.F16, DataTypes.F16);
        Assert.Equal((2048, 3), (three.Cells, three.Streams));
        Assert.Equal((1024, 5), (five.Cells, five.Streams));
    }

    [Theory]
    // research/llamacpp/results/swa_runs.txt, llama.cpp c0c7e147, a gemma3-shaped model with n_swa 512:
    // "[s0] n_ubatch = 512 … creating SWA KV cache, size = 1024 cells" (PAD(512 + 512, 256));
    // "[s2] n_ubatch = 1024 … size = 1536 cells"; "[s6] n_ubatch = 100 … size = 768 cells" (PAD(612, 256)).
    [InlineData(4096, 512, 1024)]
    [InlineData(8192, 1024, 1536)]
    [InlineData(4096, 100, 768)]
    public void Sliding_layers_keep_the_window_plus_a_ubatch_padded_to_256(int context, int ubatch, int slidingCells)
    {
        var model = LlamaCppModels.Read(Gemma3Shape);
        KvCache kv = KvCache.For(model, context, 1, unified: true, padding: 256, ubatch: ubatch, DataTypes.F16, DataTypes.F16);
        Assert.Equal(slidingCells, kv.SlidingCells);
        // 5 sliding layers and 1 full one, 2 × 256 × 2 B per cell and layer.
        Assert.Equal(1024L * ((5L * slidingCells) + context), kv.Bytes);
    }

    [Fact]
    public void Four_unified_sequences_widen_the_sliding_window_four_times()
    {
        // swa_runs.txt "[s4] n_seq_max = 4, n_ctx_seq = 4096 … SWA KV cache, size = 2560 cells" = PAD(4 × 512 + 512, 256).
        var model = LlamaCppModels.Read(Gemma3Shape);
        Assert.Equal(2560, KvCache.For(model, 4096, 4, unified: true, padding: 256, ubatch: 512, DataTypes.F16, DataTypes.F16).SlidingCells);
    }
}
