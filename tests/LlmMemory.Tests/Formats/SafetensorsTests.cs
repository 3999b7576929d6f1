using System.Text.Json;
using LlmMemory.Catalog;
using LlmMemory.Estimation;
using LlmMemory.Formats.Safetensors;
using LlmMemory.Models;
using LlmMemory.Numerics;
using LlmMemory.Sources;
using LlmMemory.Tests.Cli;
using LlmMemory.Tests.Support;
using LlmMemory.Workloads;

namespace LlmMemory.Tests.Formats;

public sealed class SafetensorsTests
{
    public static TheoryData<string> CatalogModels() => new(ModelCatalog.All.Select(m => m.Alias));

    /// <summary>Every tensor of a config's layout as a checkpoint stores it: routed experts one tensor per expert, in BF16.</summary>
    internal static List<(string Name, string DType, long[] Shape)> CheckpointTensors(ModelArchitecture a, string dtype = "BF16") =>
        a.Tensors.Tensors.SelectMany(t => t.Form == TensorForm.ExpertLinear
                ? Enumerable.Range(0, (int)t.Shape[0]).Select(e => (t.Name.Replace(".*.", $".{e}.", StringComparison.Ordinal), dtype, t.Shape[1..].ToArray()))
                : [(t.Name, dtype, t.Shape.ToArray())])
            .ToList();

    internal static string WriteCheckpoint(TempFolder folder, CatalogModel model, int shards = 1)
    {
        File.WriteAllText(folder.File("config.json"), model.Config.GetRawText());
        List<(string Name, string DType, long[] Shape)> tensors = CheckpointTensors(model.Architecture);
        if (shards == 1)
        {
            SafetensorsWriter.Write(folder.File("model.safetensors"), tensors);
            return folder.Path;
        }

        var map = new Dictionary<string, string>();
        for (int s = 0; s < shards; s++)
        {
            string shard = $"model-{s + 1:D5}-of-{shards:D5}.safetensors";
            var part = tensors.Where((_, i) => i % shards == s).ToList();
            SafetensorsWriter.Write(folder.File(shard), part);
            part.ForEach(t => map[t.Name] = shard);
        }

        File.WriteAllText(folder.File("model.safetensors.index.json"), System.Text.Json.JsonSerializer.Serialize(new { metadata = new { total_size = 0 }, weight_map = map }));
        return folder.Path;
    }

    [Theory]
    [MemberData(nameof(CatalogModels))]
    public void Count_from_headers_equals_the_count_from_config_json(string alias)
    {
        // Expected: the count config.json implies (ConfigJsonReader, pinned to published counts in ParameterCountTests).
        Assert.True(ModelCatalog.TryFind(alias, out CatalogModel model));
        using var folder = new TempFolder();
        WriteCheckpoint(folder, model);
        ResolvedModel read = ModelResolver.Resolve(new ModelReference.Named(folder.Path));
        Assert.Equal(model.Architecture.ParameterCount, read.ParameterCount);
        Assert.Equal(WeightsFileFormat.Safetensors, read.Architecture!.WeightsFile!.Format);
        Assert.Empty(read.Architecture.WeightsFile.Notes);
        // Every element is BF16 (2 bytes), so the file's tensor bytes are twice the count.
        Assert.Equal(2 * model.Architecture.ParameterCount, read.Architecture.WeightsFile.TensorBytes);
    }

    [Fact]
    public void A_sharded_checkpoint_is_read_through_its_index()
    {
        Assert.True(ModelCatalog.TryFind("qwen2.5-0.5b", out CatalogModel model));
        using var folder = new TempFolder();
        WriteCheckpoint(folder, model, shards: 3);
        ResolvedModel read = ModelResolver.Resolve(new ModelReference.Named(folder.File("model.safetensors.index.json")));
        // Qwen2.5-0.5B: 494,032,768 parameters (model card "Number of Parameters: 0.49B"; data/models/qwen2.5-0.5b.json).
        Assert.Equal(494_032_768, read.ParameterCount);
        Assert.Equal(3, read.Architecture!.WeightsFile!.Files.Count);
    }

    [Fact]
    public void Roles_come_from_the_config_layout()
    {
        Assert.True(ModelCatalog.TryFind("mixtral-8x7b", out CatalogModel model));
        using var folder = new TempFolder();
        WriteCheckpoint(folder, model);
        ModelArchitecture read = ModelResolver.Resolve(new ModelReference.Named(folder.Path)).Architecture!;
        foreach (TensorRole role in Enum.GetValues<TensorRole>())
        {
            Assert.Equal(model.Architecture.Tensors.CountOf(role), read.Tensors.CountOf(role));
        }

        // Mixtral-8x7B: 46.7B total, 12.9B active (Mistral AI announcement, "Mixtral of experts").
        Assert.InRange(read.ActiveParameterCount, 12_800_000_000, 13_000_000_000);
        TensorSpec expert = read.Tensors.Tensors.First(t => t.Name == "model.layers.0.block_sparse_moe.experts.3.w1.weight");
        Assert.Equal(TensorRole.Expert, expert.Role);
        Assert.Equal(DataTypes.BF16, expert.Stored);
    }

    [Fact]
    public void Rotary_tables_masks_and_quantization_scales_are_stored_but_not_parameters()
    {
        // A 2-layer GPT-NeoX-style checkpoint with its inv_freq and causal-mask buffers, as old transformers saved them.
        using var folder = new TempFolder();
        File.WriteAllText(folder.File("config.json"), """
            {"model_type": "gpt_neox", "num_hidden_layers": 1, "hidden_size": 64, "num_attention_heads": 4, "intermediate_size": 256,
             "vocab_size": 128, "max_position_embeddings": 32}
            """);
        List<(string, string, long[])> tensors =
        [
            ("gpt_neox.embed_in.weight", "F16", [128, 64]),
            ("gpt_neox.layers.0.input_layernorm.weight", "F16", [64]), ("gpt_neox.layers.0.input_layernorm.bias", "F16", [64]),
            ("gpt_neox.layers.0.post_attention_layernorm.weight", "F16", [64]), ("gpt_neox.layers.0.post_attention_layernorm.bias", "F16", [64]),
            ("gpt_neox.layers.0.attention.query_key_value.weight", "F16", [192, 64]), ("gpt_neox.layers.0.attention.query_key_value.bias", "F16", [192]),
            ("gpt_neox.layers.0.attention.dense.weight", "F16", [64, 64]), ("gpt_neox.layers.0.attention.dense.bias", "F16", [64]),
            ("gpt_neox.layers.0.mlp.dense_h_to_4h.weight", "F16", [256, 64]), ("gpt_neox.layers.0.mlp.dense_h_to_4h.bias", "F16", [256]),
            ("gpt_neox.layers.0.mlp.dense_4h_to_h.weight", "F16", [64, 256]), ("gpt_neox.layers.0.mlp.dense_4h_to_h.bias", "F16", [64]),
            ("gpt_neox.final_layer_norm.weight", "F16", [64]), ("gpt_neox.final_layer_norm.bias", "F16", [64]),
            ("embed_out.weight", "F16", [128, 64]),
            ("gpt_neox.layers.0.attention.rotary_emb.inv_freq", "F32", [8]),
            ("gpt_neox.layers.0.attention.bias", "BOOL", [1, 1, 32, 32]),
            ("gpt_neox.layers.0.attention.masked_bias", "F32", []),
        ];
        long bytes = SafetensorsWriter.Write(folder.File("model.safetensors"), tensors);
        ModelArchitecture read = SafetensorsCheckpoint.ReadFolder(folder.Path);
        // Parameters by hand: embed 128·64 + block (4·64 norms + 192·64 + 192 + 64·64 + 64 + 256·64 + 256 + 64·256 + 64)
        // + final norm 2·64 + head 128·64 = 8,192 + 49,984 + 128 + 8,192 = 66,496.
        Assert.Equal(66_496, read.ParameterCount);
        Assert.Equal(3, read.Tensors.Buffers.Count);
        Assert.Equal(bytes, read.WeightsFile!.TensorBytes);
        Assert.Empty(read.WeightsFile.Notes);
    }

    [Fact]
    public void Packed_gptq_and_bitsandbytes_weights_count_their_logical_parameters()
    {
        // One llama block quantized two ways. GPTQ (AutoGPTQ layout): qweight int32 [in/8, out], qzeros int32 [in/g, out/8],
        // scales fp16 [in/g, out], g_idx int32 [in]. bitsandbytes 4-bit: weight uint8 [out·in/2, 1] plus absmax and quant_map.
        using var folder = new TempFolder();
        File.WriteAllText(folder.File("config.json"), """
            {"model_type": "llama", "num_hidden_layers": 1, "hidden_size": 128, "num_attention_heads": 4, "intermediate_size": 256,
             "vocab_size": 64, "quantization_config": {"quant_method": "gptq", "bits": 4, "group_size": 128}}
            """);
        var tensors = new List<(string, string, long[])>
        {
            ("model.embed_tokens.weight", "F16", [64, 128]), ("model.norm.weight", "F16", [128]), ("lm_head.weight", "F16", [64, 128]),
            ("model.layers.0.input_layernorm.weight", "F16", [128]), ("model.layers.0.post_attention_layernorm.weight", "F16", [128]),
        };
        foreach ((string module, long outF, long inF) in new[] { ("self_attn.q_proj", 128L, 128L), ("self_attn.k_proj", 128L, 128L),
            ("self_attn.v_proj", 128L, 128L), ("self_attn.o_proj", 128L, 128L), ("mlp.gate_proj", 256L, 128L), ("mlp.up_proj", 256L, 128L) })
        {
            string p = $"model.layers.0.{module}";
            tensors.AddRange([($"{p}.qweight", "I32", [inF / 8, outF]), ($"{p}.qzeros", "I32", [inF / 128, outF / 8]),
                ($"{p}.scales", "F16", [inF / 128, outF]), ($"{p}.g_idx", "I32", [inF])]);
        }

        // down_proj in bitsandbytes NF4 form, to cover the second packing.
        tensors.AddRange([("model.layers.0.mlp.down_proj.weight", "U8", [128 * 256 / 2, 1]), ("model.layers.0.mlp.down_proj.weight.absmax", "F32", [512]),
            ("model.layers.0.mlp.down_proj.weight.quant_map", "F32", [16])]);
        long bytes = SafetensorsWriter.Write(folder.File("model.safetensors"), tensors);
        ModelArchitecture read = SafetensorsCheckpoint.ReadFolder(folder.Path);
        // Logical parameters: 2·64·128 (embed, head) + 3·128 (norms) + 4·128·128 (attention) + 3·256·128 (MLP) = 180,608.
        Assert.Equal(180_608, read.ParameterCount);
        Assert.Equal(bytes, read.WeightsFile!.TensorBytes);
        Assert.Equal(DataTypes.Int4, read.Tensors.Tensors.Single(t => t.Name.EndsWith("q_proj.qweight", StringComparison.Ordinal)).Stored);
        Assert.Equal(20, read.Tensors.Buffers.Count);
    }

    [Fact]
    public void Fp8_checkpoints_keep_their_block_scales_as_buffers()
    {
        // DeepSeek-V3 layout: weight F8_E4M3 plus weight_scale_inv F32 per 128×128 block.
        using var folder = new TempFolder();
        File.WriteAllText(folder.File("config.json"), """
            {"model_type": "llama", "num_hidden_layers": 1, "hidden_size": 128, "num_attention_heads": 1, "intermediate_size": 256,
             "vocab_size": 64, "tie_word_embeddings": true}
            """);
        var tensors = new List<(string, string, long[])>
        {
            ("model.embed_tokens.weight", "BF16", [64, 128]), ("model.norm.weight", "BF16", [128]),
            ("model.layers.0.input_layernorm.weight", "BF16", [128]), ("model.layers.0.post_attention_layernorm.weight", "BF16", [128]),
        };
        foreach ((string module, long outF, long inF) in new[] { ("self_attn.q_proj", 128L, 128L), ("self_attn.k_proj", 128L, 128L),
            ("self_attn.v_proj", 128L, 128L), ("self_attn.o_proj", 128L, 128L), ("mlp.gate_proj", 256L, 128L), ("mlp.up_proj", 256L, 128L),
            ("mlp.down_proj", 128L, 256L) })
        {
            tensors.Add(($"model.layers.0.{module}.weight", "F8_E4M3", [outF, inF]));
            tensors.Add(($"model.layers.0.{module}.weight_scale_inv", "F32", [outF / 128, inF / 128]));
        }

        long bytes = SafetensorsWriter.Write(folder.File("model.safetensors"), tensors);
        ModelArchitecture read = SafetensorsCheckpoint.ReadFolder(folder.Path);
        // 64·128 + 3·128 + 4·128² + 3·256·128 = 8,192 + 384 + 65,536 + 98,304 = 172,416.
        Assert.Equal(172_416, read.ParameterCount);
        Assert.Equal(7, read.Tensors.Buffers.Count);
        Assert.Equal(bytes, read.WeightsFile!.TensorBytes);
    }

    [Fact]
    public void A_tensor_outside_the_config_layout_is_counted_with_a_note()
    {
        Assert.True(ModelCatalog.TryFind("smollm2-135m", out CatalogModel model));
        using var folder = new TempFolder();
        File.WriteAllText(folder.File("config.json"), model.Config.GetRawText());
        List<(string Name, string DType, long[] Shape)> tensors = CheckpointTensors(model.Architecture);
        tensors.Add(("model.value_head.weight", "BF16", [1, 576]));
        SafetensorsWriter.Write(folder.File("model.safetensors"), tensors);
        ModelArchitecture read = SafetensorsCheckpoint.ReadFolder(folder.Path);
        Assert.Equal(model.Architecture.ParameterCount + 576, read.ParameterCount);
        Assert.Contains(read.WeightsFile!.Notes, n => n.Contains("model.value_head.weight", StringComparison.Ordinal));
    }

    [Fact]
    public void A_header_that_contradicts_config_json_is_refused_by_name()
    {
        Assert.True(ModelCatalog.TryFind("smollm2-135m", out CatalogModel model));
        using var folder = new TempFolder();
        File.WriteAllText(folder.File("config.json"), model.Config.GetRawText());
        List<(string Name, string DType, long[] Shape)> tensors = CheckpointTensors(model.Architecture);
        tensors[0] = ("model.embed_tokens.weight", "BF16", [50000, 576]);
        SafetensorsWriter.Write(folder.File("model.safetensors"), tensors);
        var error = Assert.Throws<ModelFormatException>(() => SafetensorsCheckpoint.ReadFolder(folder.Path));
        Assert.Contains("model.embed_tokens.weight", error.Message, StringComparison.Ordinal);
        Assert.Contains("disagree", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_index_that_names_the_wrong_shard_is_refused()
    {
        Assert.True(ModelCatalog.TryFind("smollm2-135m", out CatalogModel model));
        using var folder = new TempFolder();
        WriteCheckpoint(folder, model, shards: 2);
        string index = folder.File("model.safetensors.index.json");
        var json = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(index))!;
        string shard = json["weight_map"]!["model.norm.weight"]!.GetValue<string>();
        json["weight_map"]!["model.norm.weight"] = shard.StartsWith("model-00001", StringComparison.Ordinal) ? "model-00002-of-00002.safetensors" : "model-00001-of-00002.safetensors";
        File.WriteAllText(index, json.ToJsonString());
        var error = Assert.Throws<ModelFormatException>(() => SafetensorsCheckpoint.ReadIndex(index));
        Assert.Contains("model.norm.weight", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_cli_takes_a_checkpoint_folder_an_index_or_one_file_and_estimates_the_stored_bytes()
    {
        Assert.True(ModelCatalog.TryFind("qwen2.5-0.5b", out CatalogModel model));
        using var folder = new TempFolder();
        WriteCheckpoint(folder, model, shards: 2);
        (int code, string output, string error) = CliTests.Run("params", folder.File("model.safetensors.index.json"), "--json");
        Assert.True(code == 0, error);
        using (JsonDocument json = JsonDocument.Parse(output))
        {
            // Qwen2.5-0.5B: 494,032,768 parameters (data/models/qwen2.5-0.5b.json).
            Assert.Equal(494_032_768, json.RootElement.GetProperty("parameters").GetProperty("total").GetInt64());
        }

        (code, output, error) = CliTests.Run("estimate", folder.Path, "--json");
        Assert.True(code == 0, error);
        using (JsonDocument json = JsonDocument.Parse(output))
        {
            long weights = json.RootElement.GetProperty("components").EnumerateArray()
                .Where(c => c.GetProperty("name").GetString()!.Contains("weights", StringComparison.Ordinal)).Sum(c => c.GetProperty("bytes").GetInt64());
            // BF16: 2 bytes per parameter, exactly the shards' data sections.
            Assert.Equal(2 * 494_032_768L, weights);
        }

        using var single = new TempFolder();
        WriteCheckpoint(single, model);
        (code, _, error) = CliTests.Run("params", single.File("model.safetensors"));
        Assert.True(code == 0, error);
    }

    [Fact]
    public void Estimated_weights_of_a_quantized_checkpoint_include_its_scales()
    {
        // The GPTQ + NF4 block above: the as-stored weights are the file's tensor bytes, scales and zero points included.
        using var folder = new TempFolder();
        File.WriteAllText(folder.File("config.json"), """
            {"model_type": "llama", "num_hidden_layers": 1, "hidden_size": 128, "num_attention_heads": 4, "intermediate_size": 256,
             "vocab_size": 64, "tie_word_embeddings": true, "quantization_config": {"quant_method": "gptq", "bits": 4, "group_size": 128}}
            """);
        var tensors = new List<(string, string, long[])>
        {
            ("model.embed_tokens.weight", "F16", [64, 128]), ("model.norm.weight", "F16", [128]),
            ("model.layers.0.input_layernorm.weight", "F16", [128]), ("model.layers.0.post_attention_layernorm.weight", "F16", [128]),
        };
        foreach ((string module, long outF, long inF) in new[] { ("self_attn.q_proj", 128L, 128L), ("self_attn.k_proj", 128L, 128L),
            ("self_attn.v_proj", 128L, 128L), ("self_attn.o_proj", 128L, 128L), ("mlp.gate_proj", 256L, 128L), ("mlp.up_proj", 256L, 128L),
            ("mlp.down_proj", 128L, 256L) })
        {
            string p = $"model.layers.0.{module}";
            tensors.AddRange([($"{p}.qweight", "I32", [inF / 8, outF]), ($"{p}.qzeros", "I32", [inF / 128, outF / 8]),
                ($"{p}.scales", "F16", [inF / 128, outF]), ($"{p}.g_idx", "I32", [inF])]);
        }

        long bytes = SafetensorsWriter.Write(folder.File("model.safetensors"), tensors);
        (int code, string output, string error) = CliTests.Run("estimate", folder.Path, "--json");
        Assert.True(code == 0, error);
        using JsonDocument json = JsonDocument.Parse(output);
        Assert.Equal(bytes, json.RootElement.GetProperty("components").EnumerateArray()
            .Where(c => c.GetProperty("name").GetString()!.Contains("weights", StringComparison.Ordinal)).Sum(c => c.GetProperty("bytes").GetInt64()));
    }
}
