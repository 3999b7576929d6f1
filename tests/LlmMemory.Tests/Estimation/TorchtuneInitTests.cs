using System.Text.Json;
using LlmMemory.Estimation;
using LlmMemory.Estimation.Engines;
using LlmMemory.Estimation.Replay;
using LlmMemory.Workloads;

namespace LlmMemory.Tests.Estimation;

/// <summary>
/// torchtune builds a QLoRA model's NF4 weights on the GPU before the first step (torchao's <c>NF4Tensor.from_tensor</c>,
/// torchao/dtypes/nf4tensor.py), and the allocator keeps the segments that quantizing made. The weight here is
/// 4,096 × 4,096 = n = 16,777,216 elements of bf16 (2n = 32 MiB), every tensor a multiple of the allocator's 512 B, so a
/// block is exactly its tensor. Block 64: n/64 = 262,144 absmax values, bf16, n/32 = 524,288 B (the small pool).
/// </summary>
public sealed class TorchtuneInitTests
{
    private const long N = 4_096L * 4_096;

    /// <summary>The parameter's stored bytes: packed codes n/2 and int8 scalers n/64.</summary>
    private const long Stored = N / 2 + N / 64;

    private static (long Peak, long Left) Quantize(bool chunked)
    {
        var engine = new ReplayEngine(null, 0, AllocatorSettings.Default);
        new TorchtuneInit(ClonedLayers: false, Chunked: chunked)
            .FromTensor(engine, N, () => engine.Empty([Stored], ScalarType.UInt8, MemoryTag.Weight));
        return (engine.Allocator.PeakAllocated, engine.Allocator.Allocated);
    }

    [Fact]
    public void Torchao_0_1_quantizes_the_whole_weight_at_once_holding_66_bytes_per_element_at_its_peak()
    {
        // convert_to_norm_float_weight before torchao PR #196: the block absmax values (n/32 B) and scaled_blocks (2n B) are
        // alive when quantize_tensor_nearest makes (value - nf4) and its .abs(), each [n, 16] bf16 = 32n B:
        // 2n + 64n + n/32 = 66 × 16,777,216 + 524,288 = 1,107,820,544 B. Only the parameter is left.
        (long peak, long left) = Quantize(chunked: false);
        Assert.Equal(1_107_820_544, peak);
        Assert.Equal(Stored, left);
    }

    [Fact]
    public void Torchao_from_0_2_quantizes_in_chunks_of_a_mebi_element_holding_3_bytes_per_element_and_64_MiB()
    {
        // From torchao 0.2.0 (CHUNK_SIZE = 1024**2): the absmax values (n/32), scaled_blocks (2n) and the uint8 codes
        // (quantized_blocks = torch.empty(numel, uint8), n B) are alive with one chunk's (value - nf4) and .abs(),
        // 1,048,576 × 16 × 2 B = 32 MiB each: 524,288 + 33,554,432 + 16,777,216 + 2 × 33,554,432 = 117,964,800 B.
        (long peak, long left) = Quantize(chunked: true);
        Assert.Equal(117_964_800, peak);
        Assert.Equal(Stored, left);
    }

    private const string Config = """
        {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 256, "intermediate_size": 512,
         "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 4, "vocab_size": 1024,
         "max_position_embeddings": 4096, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": false,
         "hidden_act": "silu", "torch_dtype": "bfloat16"}
        """;

    private static Scenario Read(string fields)
    {
        using JsonDocument document = JsonDocument.Parse($$"""{"model": {"config": {{Config}}}, "engine": "torchtune", "batch": 2, "seq": 64, {{fields}} }""");
        return ScenarioDraft.FromJson(document.RootElement, "test").Read();
    }

    [Theory]
    [InlineData(""" "mode": "training", "parallel": {"gpus": 2, "fsdp": "full_shard"}, "engine_options": {"version": "0.1.1"} """, "torchtune's model build in training on one GPU")]
    [InlineData(""" "mode": "qlora", "engine_options": {"version": "newest"} """, "not a torchtune release")]
    [InlineData(""" "mode": "qlora", "engine_options": {"version": "0.0.9"} """, "older than the torchtune releases read")]
    public void A_torchtune_release_where_it_cannot_apply_is_refused_naming_the_field(string fields, string reason)
    {
        ModelFormatException e = Assert.Throws<ModelFormatException>(() => MemoryEstimator.Estimate(Read(fields)));
        Assert.Equal("engine_options.version", e.Key);
        Assert.Contains(reason, e.Message, StringComparison.Ordinal);
    }
}
