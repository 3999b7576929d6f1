using LlmMemory.Estimation;
using LlmMemory.Numerics;
using LlmMemory.Workloads;

namespace LlmMemory.Tests.Estimation.LlamaCpp;

/// <summary>The llama.cpp estimate as a whole: which buffers, where they live, and the model and KV buffers llama.cpp printed.</summary>
public sealed class LlamaCppEstimatorTests
{
    private static MemoryEstimate Pythia(string weights, int gpuLayers) => LlamaCppModels.Estimate(
        LlamaCppModels.Scenario(LlamaCppModels.Pythia28B, "v100-16gb", weights) with
        {
            Seq = 2048,
            EngineOptions = new EngineOptions { NGpuLayers = gpuLayers, FlashAttn = false, Version = "b4823" },
        });

    [Theory]
    // ggml-org/ci e966aaa7 llama.cpp/56/4747beac…/ggml-4-x86-cuda-v100/README.md (build 4823), pythia-2.8b -ngl 99, per file:
    // "CUDA0 model buffer size = …" and "CPU_Mapped model buffer size = …" (token_embd alone stays on the host).
    [InlineData("f16", 5049.71, 245.62)]
    [InlineData("q2_k", 993.89, 40.30)]
    [InlineData("q3_k_m", 1354.83, 52.77)]
    [InlineData("q4_0", 1454.83, 69.08)]
    [InlineData("q4_k_m", 1632.95, 69.08)]
    [InlineData("q5_0", 1754.83, 84.43)]
    [InlineData("q5_k_m", 1887.64, 84.43)]
    [InlineData("q8_0", 2684.57, 130.49)]
    public void Pythia_model_buffers_match_the_ggml_ci_log(string weights, double cuda0, double cpuMapped)
    {
        MemoryEstimate estimate = Pythia(weights, 99);
        LlamaCppModels.Printed(cuda0, estimate.Quantity(MeasuredQuantity.Weights));
        LlamaCppModels.Printed(cpuMapped, LlamaCppModels.Component(estimate, "weights_host").Bytes.Bytes);
    }

    [Fact]
    public void Partial_offload_splits_weights_and_cache_between_GPU_and_host()
    {
        // Same log, save-load-state -ngl 10 on Q4_0: "CUDA0 model buffer size = 423.14 MiB", "CPU_AARCH64 model buffer size =
        // 928.12 MiB", "CPU_Mapped model buffer size = 1086.70 MiB"; "CUDA0 KV buffer size = 200.00 MiB", "CPU KV buffer size =
        // 440.00 MiB" (10 and 22 layers × 2048 cells × 2 × 2560 × 2 B = 20 MiB per layer).
        MemoryEstimate estimate = Pythia("q4_0", 10);
        LlamaCppModels.Printed(423.14, estimate.Quantity(MeasuredQuantity.Weights));
        LlamaCppModels.Printed(928.12, LlamaCppModels.Component(estimate, "weights_host_repacked").Bytes.Bytes);
        LlamaCppModels.Printed(1086.70, LlamaCppModels.Component(estimate, "weights_host").Bytes.Bytes);
        Assert.Equal(200L * 1048576, estimate.Quantity(MeasuredQuantity.KvCache));
        Assert.Equal(440L * 1048576, LlamaCppModels.Component(estimate, "kv_cache_host").Bytes.Bytes);
        Assert.Equal(Residence.Host, LlamaCppModels.Component(estimate, "kv_cache_host").Residence);
    }

    [Fact]
    public void A_GPU_run_keeps_the_output_buffer_on_the_host_and_counts_the_CUDA_context_only_in_device_memory()
    {
        // Same log: "CUDA_Host output buffer size = 0.19 MiB" = 50304 vocab × 4 B for one sequence (201,216 B).
        MemoryEstimate estimate = Pythia("q4_k_m", 99);
        MemoryComponent output = LlamaCppModels.Component(estimate, "output_buffer");
        Assert.Equal(50304 * 4, output.Bytes.Bytes);
        Assert.Equal(Residence.Host, output.Residence);
        MemoryComponent context = LlamaCppModels.Component(estimate, "cuda_context");
        Assert.Equal(Counter.Device, context.Counter);
        Assert.Equal(estimate.Quantity(MeasuredQuantity.DeviceUsed) - context.Bytes.Bytes, estimate.Quantity(MeasuredQuantity.PeakReserved));
    }

    [Fact]
    public void On_the_CPU_every_buffer_is_device_memory_and_the_weights_are_the_mapped_file()
    {
        // data/validation/llamacpp-cases.jsonl (71102a73, SmolLM2-135M shape, F16): "CPU_Mapped model buffer size = 256.63 MiB".
        // Every tensor is mapped, each a multiple of 32 B, so the buffer is the tensor data: token_embd 576 × 49152 × 2 B =
        // 56,623,104; per layer q and o 2 × 663,552, k and v 2 × 221,184, gate, up and down 3 × 1,769,472, two F32 norms 4,608
        // = 7,082,496, × 30 = 212,474,880; output_norm 2,304. Total 269,100,288 B.
        Scenario scenario = LlamaCppModels.Scenario(LlamaCppModels.SmolLm2) with
        {
            Seq = 512,
            EngineOptions = new EngineOptions { NBatch = 2048, NUbatch = 512, NSeq = 1, FlashAttn = false },
        };
        MemoryEstimate estimate = LlamaCppModels.Estimate(scenario);
        Assert.All(estimate.Components, c => Assert.Equal(Residence.Device, c.Residence));
        Assert.DoesNotContain(estimate.Components, c => c.Kind == ComponentKind.Runtime);
        Assert.Equal(269_100_288, estimate.Quantity(MeasuredQuantity.Weights));
        LlamaCppModels.Printed(256.63, estimate.Quantity(MeasuredQuantity.Weights));
        // "llama_kv_cache: size = 11.25 MiB (512 cells, 30 layers …)": 30 × 512 × 2 × 192 × 2 B = 11,796,480 B.
        Assert.Equal(11_796_480, estimate.Quantity(MeasuredQuantity.KvCache));
    }

    [Fact]
    public void Context_defaults_to_seq_times_batch_and_n_ctx_wins()
    {
        // docs/scenario.md: for llama.cpp seq is one sequence's context and batch the number of sequences; n_ctx wins as -c does.
        // Tiny llama: 4 layers × 2 × 64 × 2 B = 1 KiB per cell. seq 1000 × batch 3 = 3000 → PAD(3000, 256) = 3072, / 3 sequences =
        // 1024 → PAD 1024 cells × 3 streams = 3 MiB; with n_ctx 8192: 8192 / 3 = 2730 → PAD 2816 × 3 = 8448 KiB.
        Scenario scenario = LlamaCppModels.Scenario(LlamaCppModels.TinyLlama) with { Seq = 1000, Batch = 3 };
        Assert.Equal(3L * 1048576, LlamaCppModels.Estimate(scenario).Quantity(MeasuredQuantity.KvCache));
        Scenario explicitContext = scenario with { EngineOptions = new EngineOptions { NCtx = 8192 } };
        Assert.Equal(8448L * 1024, LlamaCppModels.Estimate(explicitContext).Quantity(MeasuredQuantity.KvCache));
    }

    [Fact]
    public void The_defaults_are_written_in_the_notes()
    {
        MemoryEstimate estimate = LlamaCppModels.Estimate(LlamaCppModels.Scenario(LlamaCppModels.TinyLlama, gpu: "rtx-4090"));
        Assert.Contains(estimate.Notes, n => n.Contains("Flash attention auto: on", StringComparison.Ordinal));
        Assert.Contains(estimate.Notes, n => n.Contains("-ngl all", StringComparison.Ordinal));
        Assert.Contains(estimate.Notes, n => n.Contains("n_batch 2048, n_ubatch 512", StringComparison.Ordinal));
    }

    [Fact]
    public void A_quantized_V_cache_without_flash_attention_is_refused_as_llama_cpp_refuses_it()
    {
        Scenario scenario = LlamaCppModels.Scenario(LlamaCppModels.TinyLlama) with
        {
            KvCacheDtype = DataTypes.Parse("q8_0"),
            EngineOptions = new EngineOptions { FlashAttn = false },
        };
        var error = Assert.Throws<ModelFormatException>(() => LlamaCppModels.Estimate(scenario));
        Assert.Contains("flash attention", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Weights_llama_cpp_cannot_load_are_refused_with_the_formats_it_can()
    {
        var error = Assert.Throws<ModelFormatException>(() => LlamaCppModels.Estimate(LlamaCppModels.Scenario(LlamaCppModels.TinyLlama, weights: "nf4")));
        Assert.Equal("weights", error.Key);
        Assert.Contains("q4_k_m", error.Message, StringComparison.Ordinal);
    }
}
