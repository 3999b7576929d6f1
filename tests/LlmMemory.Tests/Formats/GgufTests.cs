using System.Text.Json;
using LlmMemory.Catalog;
using LlmMemory.Estimation;
using LlmMemory.Formats.Gguf;
using LlmMemory.Models;
using LlmMemory.Numerics;
using LlmMemory.Sources;
using LlmMemory.Tests.Cli;
using LlmMemory.Tests.Support;
using LlmMemory.Workloads;

namespace LlmMemory.Tests.Formats;

public sealed class GgufTests
{
    public static TheoryData<string> CatalogModelsWithGgufArchitectures() =>
        new(ModelCatalog.All.Where(m => GgufFromConfig.Supports(m.Architecture)).Select(m => m.Alias));

    [Theory]
    [MemberData(nameof(CatalogModelsWithGgufArchitectures))]
    public void Count_from_a_converted_gguf_equals_the_count_from_config_json(string alias)
    {
        // The file is what convert_hf_to_gguf.py writes for this config (names, metadata keys, ggml shapes), in F16.
        Assert.True(ModelCatalog.TryFind(alias, out CatalogModel model));
        using var folder = new TempFolder();
        string path = folder.File($"{alias}-F16.gguf");
        GgufFromConfig.Writer(model.Architecture).Write(path);
        ModelArchitecture read = GgufModel.ReadFile(path);
        ModelArchitecture config = model.Architecture;
        Assert.Equal(config.ParameterCount, read.ParameterCount);
        Assert.Empty(read.WeightsFile!.Notes);
        foreach (TensorRole role in Enum.GetValues<TensorRole>())
        {
            Assert.True(config.Tensors.CountOf(role) == read.Tensors.CountOf(role), $"{role}: {config.Tensors.CountOf(role)} vs {read.Tensors.CountOf(role)}");
        }

        Assert.Equal((config.LayerCount, config.HiddenSize, config.AttentionHeadCount, config.KeyValueHeadCount, config.VocabularySize, config.TiedEmbeddings),
            (read.LayerCount, read.HiddenSize, read.AttentionHeadCount, read.KeyValueHeadCount, read.VocabularySize, read.TiedEmbeddings));
        Assert.Equal(config.Experts?.ExpertCount, read.Experts?.ExpertCount);
        Assert.Equal(config.ActiveParameterCount, read.ActiveParameterCount);
        // F16: two bytes per element.
        Assert.Equal(2 * config.ParameterCount, read.WeightsFile.TensorBytes);
    }

    /// <summary>A two-block Llama in a Q4_K_M-like mix: what llama-quantize writes for a small model.</summary>
    internal static GgufWriter TinyLlama(uint version = 3)
    {
        var w = new GgufWriter { Version = version }
            .String("general.architecture", "llama").String("general.name", "tiny")
            .UInt32("llama.block_count", 2).UInt32("llama.context_length", 2048).UInt32("llama.embedding_length", 256)
            .UInt32("llama.feed_forward_length", 512).UInt32("llama.attention.head_count", 4).UInt32("llama.attention.head_count_kv", 2)
            .Float32("llama.attention.layer_norm_rms_epsilon", 1e-5f).UInt32("general.file_type", 15)
            .Strings("tokenizer.ggml.tokens", Enumerable.Range(0, 1000).Select(i => $"tok{i}").ToArray())
            .Tensor("token_embd.weight", [256, 1000], GgufWriter.Q4_K)
            .Tensor("output_norm.weight", [256], GgufWriter.F32)
            .Tensor("output.weight", [256, 1000], GgufWriter.Q6_K)
            .Tensor("rope_freqs.weight", [32], GgufWriter.F32);
        for (int b = 0; b < 2; b++)
        {
            w.Tensor($"blk.{b}.attn_norm.weight", [256], GgufWriter.F32).Tensor($"blk.{b}.ffn_norm.weight", [256], GgufWriter.F32)
                .Tensor($"blk.{b}.attn_q.weight", [256, 256], GgufWriter.Q4_K).Tensor($"blk.{b}.attn_k.weight", [256, 128], GgufWriter.Q4_K)
                .Tensor($"blk.{b}.attn_v.weight", [256, 128], GgufWriter.Q6_K).Tensor($"blk.{b}.attn_output.weight", [256, 256], GgufWriter.Q4_K)
                .Tensor($"blk.{b}.ffn_gate.weight", [256, 512], GgufWriter.Q4_K).Tensor($"blk.{b}.ffn_up.weight", [256, 512], GgufWriter.Q4_K)
                .Tensor($"blk.{b}.ffn_down.weight", [512, 256], GgufWriter.Q6_K);
        }

        return w;
    }

    /// <summary>Parameters of <see cref="TinyLlama"/> by hand: embed and head 2·256·1000, norms 256 + 2·2·256,
    /// blocks 2·(256² + 2·128·256 + 256² + 3·512·256) = 2·589,824. The 32 rope frequencies are a buffer.</summary>
    internal const long TinyLlamaParameters = 512_000 + 1_280 + 1_179_648;

    [Fact]
    public void Roles_modules_and_stored_types_follow_the_llama_cpp_names()
    {
        using var folder = new TempFolder();
        string path = folder.File("tiny-Q4_K_M.gguf");
        TinyLlama().Write(path);
        ModelArchitecture read = GgufModel.ReadFile(path);
        Assert.Equal(TinyLlamaParameters, read.ParameterCount);
        TensorSpec Spec(string name) => read.Tensors.Tensors.Single(t => t.Name == name);
        Assert.Equal((TensorRole.TokenEmbedding, TensorForm.Embedding), (Spec("token_embd.weight").Role, Spec("token_embd.weight").Form));
        Assert.Equal(TensorRole.OutputHead, Spec("output.weight").Role);
        Assert.Equal((TensorRole.Attention, "q_proj", 1), (Spec("blk.1.attn_q.weight").Role, Spec("blk.1.attn_q.weight").Module, Spec("blk.1.attn_q.weight").Layer));
        Assert.Equal((TensorRole.FeedForward, "down_proj"), (Spec("blk.0.ffn_down.weight").Role, Spec("blk.0.ffn_down.weight").Module));
        Assert.Equal(TensorRole.Norm, Spec("blk.0.ffn_norm.weight").Role);
        Assert.Equal(DataTypes.Q6_K, Spec("blk.0.ffn_down.weight").Stored);
        // PyTorch order: ffn_down's ggml dims [512, 256] are [256 out, 512 in].
        Assert.Equal([256L, 512L], Spec("blk.0.ffn_down.weight").Shape.ToArray());
        Assert.Equal("rope_freqs.weight", Assert.Single(read.Tensors.Buffers).Name);
        Assert.Equal((4, 2, 64, 1000), (read.AttentionHeadCount, read.KeyValueHeadCount, read.HeadDimension, read.VocabularySize));
    }

    [Fact]
    public void Params_json_gives_the_exact_element_count()
    {
        using var folder = new TempFolder();
        string path = folder.File("tiny.gguf");
        TinyLlama().Write(path);
        (int code, string output, string error) = CliTests.Run("params", path, "--json");
        Assert.True(code == 0, error);
        using JsonDocument json = JsonDocument.Parse(output);
        Assert.Equal(TinyLlamaParameters, json.RootElement.GetProperty("parameters").GetProperty("total").GetInt64());
    }

    [Fact]
    public void Estimate_json_lists_weights_that_add_up_to_the_file_tensor_bytes()
    {
        using var folder = new TempFolder();
        string path = folder.File("tiny.gguf");
        GgufWriter writer = TinyLlama();
        writer.Write(path);
        // A GGUF model runs on llama.cpp; on the CPU without mmap its weights are one CPU buffer of the non-repacked tensors plus
        // the CPU_REPACK copies of the Q4_K matrices, so every tensor of the file is counted once.
        (int code, string output, string error) = CliTests.Run("estimate", path, "--gpu", "cpu", "--no-mmap", "--json");
        Assert.True(code == 0, error);
        using JsonDocument json = JsonDocument.Parse(output);
        JsonElement[] weights = json.RootElement.GetProperty("components").EnumerateArray()
            .Where(c => c.GetProperty("name").GetString()!.Contains("weights", StringComparison.Ordinal)).ToArray();
        // The writer's own sum of ggml_nbytes (ggml.c type_traits: Q4_K 144 B / 256, Q6_K 210 B / 256, F32 4 B), plus the CPU
        // buffer's 32-byte alignment of each tensor (ggml TENSOR_ALIGNMENT): only output.weight, 1000 × 210 = 210,000 B, is not
        // a multiple of 32 and takes 16 B more.
        Assert.Equal(writer.TensorBytes + 16, weights.Sum(c => c.GetProperty("bytes").GetInt64()));
        Assert.All(weights, c => Assert.True(c.GetProperty("residence").GetString() is "device" or "host"));
    }

    [Fact]
    public void Version_2_files_are_read()
    {
        using var folder = new TempFolder();
        string path = folder.File("v2.gguf");
        TinyLlama(version: 2).Write(path);
        Assert.Equal(TinyLlamaParameters, GgufModel.ReadFile(path).ParameterCount);
    }

    [Fact]
    public void Split_files_are_read_together_from_the_first()
    {
        // gguf-split: every split carries split.no / split.count / split.tensors.count; the first also the model metadata.
        using var folder = new TempFolder();
        var whole = GgufReader.Read(new MemoryStream(TinyLlama().ToBytes()), "whole");
        GgufTensor[] all = [.. whole.Tensors];
        var first = TinyLlamaHead().UInt32("split.no", 0).UInt32("split.count", 2).UInt32("split.tensors.count", (uint)all.Length);
        var second = new GgufWriter().UInt32("split.no", 1).UInt32("split.count", 2).UInt32("split.tensors.count", (uint)all.Length);
        foreach ((GgufTensor t, int i) in all.Select((t, i) => (t, i)))
        {
            (i < 10 ? first : second).Tensor(t.Name, [.. t.Dimensions], t.Type.GgmlId!.Value);
        }

        first.Write(folder.File("tiny-00001-of-00002.gguf"));
        second.Write(folder.File("tiny-00002-of-00002.gguf"));
        ResolvedModel read = ModelResolver.Resolve(new ModelReference.Named(folder.File("tiny-00001-of-00002.gguf")));
        Assert.Equal(TinyLlamaParameters, read.ParameterCount);
        Assert.Equal(2, read.Architecture!.WeightsFile!.Files.Count);

        File.Delete(folder.File("tiny-00002-of-00002.gguf"));
        var missing = Assert.Throws<ModelFormatException>(() => ModelResolver.Resolve(new ModelReference.Named(folder.File("tiny-00001-of-00002.gguf"))));
        Assert.Contains("tiny-00002-of-00002.gguf", missing.Message, StringComparison.Ordinal);
    }

    private static GgufWriter TinyLlamaHead() => new GgufWriter()
        .String("general.architecture", "llama").UInt32("llama.block_count", 2).UInt32("llama.context_length", 2048)
        .UInt32("llama.embedding_length", 256).UInt32("llama.feed_forward_length", 512).UInt32("llama.attention.head_count", 4)
        .UInt32("llama.attention.head_count_kv", 2);

    [Theory]
    // include/llama.h enum llama_ftype: LLAMA_FTYPE_MOSTLY_Q4_K_M = 15, MOSTLY_Q8_0 = 7, MOSTLY_BF16 = 32, ALL_F32 = 0.
    [InlineData(15u, "written as q4_k_m")]
    [InlineData(7u, "written as q8_0")]
    [InlineData(32u, "written as bf16")]
    [InlineData(0u, "written as fp32")]
    // LLAMA_FTYPE_GUESSED = 1024 is what llama.cpp reports when a file does not say; no file should store it.
    [InlineData(1024u, "not a llama.cpp file type this library knows")]
    public void The_file_type_is_named_in_a_note(uint fileType, string expected)
    {
        var file = new GgufWriter().String("general.architecture", "llama").UInt32("general.file_type", fileType)
            .UInt32("llama.block_count", 1).UInt32("llama.embedding_length", 64).UInt32("llama.attention.head_count", 4)
            .UInt32("llama.feed_forward_length", 128).Tensor("token_embd.weight", [64, 100], GgufWriter.F16);

        ModelArchitecture read = GgufModel.FromFiles([GgufReader.Read(new MemoryStream(file.ToBytes()), "tiny.gguf")], "tiny.gguf");

        Assert.Contains(read.WeightsFile!.Notes, n => n.StartsWith($"general.file_type {fileType}", StringComparison.Ordinal) && n.Contains(expected, StringComparison.Ordinal));
    }

    [Fact]
    public void Header_metadata_keeps_array_lengths_and_skips_their_strings()
    {
        GgufFile file = GgufReader.Read(new MemoryStream(TinyLlama().ToBytes()), "tiny");
        Assert.Equal(1000, file.Metadata["tokenizer.ggml.tokens"].Count);
        Assert.Equal("llama", file.Architecture);
        Assert.Equal(15, file.Metadata["general.file_type"].Number);
        Assert.Equal(0, file.DataOffset % 32);
    }
}
