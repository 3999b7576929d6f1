using LlmMemory.Estimation;
using LlmMemory.Hardware;
using LlmMemory.Numerics;
using LlmMemory.Workloads;

namespace LlmMemory.Tests.Estimation.LlamaCpp;

/// <summary>Compute buffers against the sizes llama.cpp printed (two decimals, so ±0.005 MiB).</summary>
public sealed class ComputeBufferTests
{
    private static long CpuComputeBuffer(string config, int context, bool flash, string kv = "f16", string? v = null)
    {
        Scenario scenario = LlamaCppModels.Scenario(config) with
        {
            KvCacheDtype = DataTypes.Parse(kv),
            VCacheDtype = v is null ? null : DataTypes.Parse(v),
            EngineOptions = new EngineOptions { NCtx = context, NBatch = 2048, NUbatch = 512, NSeq = 1, FlashAttn = flash },
        };
        return LlamaCppModels.Estimate(scenario).Quantity(MeasuredQuantity.ComputeBuffer);
    }

    [Fact]
    public void Tiny_llama_at_512_tokens_holds_the_logits_phase_exactly()
    {
        // data/validation/llamacpp-cases.jsonl (llama.cpp 71102a73, CPU): "CPU compute buffer size = 63.50 MiB".
        // The graph dump of research/llamacpp (SPEC §4.5) shows the final layout: inp_tokens 4T, inp_embd 4ET (never freed),
        // result_norm 4ET and the logits 4VT, T = 512: 2,048 + 524,288 + 524,288 + 65,536,000 = 66,586,624 B (63.5020 MiB).
        long bytes = CpuComputeBuffer(LlamaCppModels.TinyLlama, 512, flash: false);
        Assert.Equal(2_048 + 524_288 + 524_288 + 65_536_000, bytes);
        LlamaCppModels.Printed(63.50, bytes);
    }

    [Theory]
    // data/validation/llamacpp-cases.jsonl, llama.cpp 71102a73 on CPU, SmolLM2-135M shape:
    // c2048 FA on "CPU compute buffer size = 102.51 MiB" (a freed F16 mask leaves a hole, so result_norm lands higher);
    // c8192 FA off "= 166.38 MiB"; c8192 -ctk q8_0 -ctv f16 FA off "= 165.28 MiB" and c8192 q8_0 FA on "= 99.38 MiB"
    // (the Hadamard rotation of a quantized cache, PR #21038, changes the layout).
    [InlineData(2048, true, "f16", null, 102.51)]
    [InlineData(8192, false, "f16", null, 166.38)]
    [InlineData(8192, false, "q8_0", "f16", 165.28)]
    [InlineData(8192, true, "q8_0", null, 99.38)]
    public void SmolLM2_compute_buffers_match_the_printed_sizes(int context, bool flash, string kv, string? v, double mebibytes) =>
        LlamaCppModels.Printed(mebibytes, CpuComputeBuffer(LlamaCppModels.SmolLm2, context, flash, kv, v));

    [Theory]
    // ggml-org/ci e966aaa7 llama.cpp/56/4747beac…/ggml-4-x86-cuda-v100/README.md (build 4823, Tesla V100), pythia-2.8b:
    // save-load-state -ngl 99 -c 0 -fa on the Q4_0 file: "CUDA0 compute buffer size = 103.25 MiB", CUDA_Host 9.01 MiB;
    // llama-cli -ngl 99 -c 0 (flash_attn = 0): "CUDA0 compute buffer size = 162.00 MiB", "CUDA_Host compute buffer size = 9.01 MiB".
    [InlineData("q4_0", true, 103.25, 9.01)]
    [InlineData("f16", false, 162.00, 9.01)]
    public void Pythia_on_a_V100_at_b4823_matches_the_ggml_ci_log(string weights, bool flash, double cuda0, double host)
    {
        Scenario scenario = LlamaCppModels.Scenario(LlamaCppModels.Pythia28B, "v100-16gb", weights) with
        {
            Seq = 2048,
            EngineOptions = new EngineOptions { NGpuLayers = 99, FlashAttn = flash, Version = "b4823" },
        };
        MemoryEstimate estimate = LlamaCppModels.Estimate(scenario);
        LlamaCppModels.Printed(cuda0, estimate.Quantity(MeasuredQuantity.ComputeBuffer));
        LlamaCppModels.Printed(host, LlamaCppModels.Component(estimate, "compute_buffer_host").Bytes.Bytes);
    }

    [Fact]
    public void Partial_offload_at_b4823_copies_the_host_output_weight_into_the_GPU_buffer()
    {
        // Same log, save-load-state -ngl 10 on Q4_0: "CUDA0 compute buffer size = 203.99 MiB", "CUDA_Host compute buffer size =
        // 29.01 MiB". The output layer stays on the host, so GPU 0 holds the Q6_K output.weight copy (100.74 MiB), the
        // result_norm copy (5 MiB) and the logits (98.25 MiB); the repacked Q4_0 CPU layers keep their FFN on the CPU (20 MiB).
        Scenario scenario = LlamaCppModels.Scenario(LlamaCppModels.Pythia28B, "v100-16gb", "q4_0") with
        {
            Seq = 2048,
            EngineOptions = new EngineOptions { NGpuLayers = 10, FlashAttn = false, Version = "b4823" },
        };
        MemoryEstimate estimate = LlamaCppModels.Estimate(scenario);
        LlamaCppModels.Printed(203.99, estimate.Quantity(MeasuredQuantity.ComputeBuffer));
        LlamaCppModels.Printed(29.01, LlamaCppModels.Component(estimate, "compute_buffer_host").Bytes.Bytes);
    }

    [Fact]
    public void Two_GPUs_in_pipeline_parallel_keep_four_copies_of_the_split_inputs()
    {
        // llama.cpp issue 11200 (Qwen2.5-Coder-32B, q8_0 cache, 32768 cells, 2 GPUs, "pipeline parallelism enabled (n_copies=4)"):
        // "CUDA0 compute buffer size = 233.00 MiB", "CUDA1 … = 237.51 MiB", "CUDA_Host … = 133.01 MiB". These three sizes fit a
        // ubatch of 256 (at 512 each doubles): CUDA_Host = 4 × (F32 mask 32768 × 256 × 4 B = 32 MiB + 3 × 1 KiB inputs) + the
        // embedding rows 5120 × 256 × 4 B = 5 MiB = 133.01 MiB.
        Scenario scenario = new()
        {
            Model = new ModelReference.Named("qwen2.5-coder-32b"),
            Engine = Engine.LlamaCpp,
            KvCacheDtype = DataTypes.Parse("q8_0"),
            Seq = 32768,
            Parallel = new ParallelSettings { Gpus = 2, Pp = 2 },
            EngineOptions = new EngineOptions { NCtx = 32768, FlashAttn = true, NUbatch = 256, NBatch = 256, Version = "b4450" },
        };
        MemoryEstimate estimate = LlamaCppModels.Estimate(scenario);
        MemoryComponent compute = LlamaCppModels.Component(estimate, "compute_buffer");
        LlamaCppModels.Printed(233.00, compute.Bytes.Bytes);
        LlamaCppModels.Printed(233.00 + 237.51, compute.AllDevices!.Value.Bytes);
        LlamaCppModels.Printed(133.01, LlamaCppModels.Component(estimate, "compute_buffer_host").Bytes.Bytes);
        Assert.Equal(4352L * 1048576, estimate.Quantity(MeasuredQuantity.KvCache, allDevices: true));
    }

    [Fact]
    public void Architectures_without_a_modelled_graph_use_the_closed_form_and_say_so()
    {
        // Mixtral's MoE FFN is not simulated node by node. Closed form (research/llamacpp SPEC §4.5) at T = T_o = 512, E = 4096,
        // V = 32000, n_kv = 4096, flash attention on (current default), F = 2 active experts × 14336 = 28672:
        //   inputs = 4T + 4ET + 4T + 8T + 8T + 2·n_kv·T + 4T_o = 2,048 + 8,388,608 + 2,048 + 4,096 + 4,096 + 4,194,304 + 2,048 = 12,597,248
        //   A (logits) = 4T + 4ET + 4E·T_o + 4V·T_o = 82,315,264
        //   C (FFN) = inputs + 2·4ET + 3·4FT = 12,597,248 + 16,777,216 + 176,160,768 = 205,535,232, the largest.
        Scenario scenario = new() { Model = new ModelReference.Named("mixtral-8x7b"), Engine = Engine.LlamaCpp, Gpu = GpuCatalog.Find("cpu"), Weights = WeightFormats.Parse("q4_k_m"), Seq = 4096 };
        MemoryComponent compute = LlamaCppModels.Component(LlamaCppModels.Estimate(scenario), "compute_buffer");
        Assert.Contains("closed form", compute.Formula, StringComparison.Ordinal);
        Assert.Equal(205_535_232, compute.Bytes.Bytes);
    }
}
