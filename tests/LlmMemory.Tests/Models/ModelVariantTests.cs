using LlmMemory.Catalog;
using LlmMemory.Sources;
using LlmMemory.Workloads;

namespace LlmMemory.Tests.Models;

/// <summary>The instruct, chat and -it ids people type resolve offline to their base model (data/model-variants.json).</summary>
public sealed class ModelVariantTests
{
    public static TheoryData<string, string, long> TypedIds => new()
    {
        // exact_params of data/models/llama-3.1-8b.json (Hugging Face safetensors.total; source line in the file).
        { "meta-llama/Llama-3.1-8B-Instruct", "llama-3.1-8b", 8_030_261_248 },
        // exact_params of data/models/qwen2.5-7b.json (safetensors.total of Qwen2.5-7B-Instruct, as its source line says).
        { "Qwen/Qwen2.5-7B-Instruct", "qwen2.5-7b", 7_615_616_512 },
        // Gemma 2 9B (data/models/gemma-2-9b.json: 42 layers, hidden 3584, 16 heads and 8 KV heads of 256, MLP 14336, vocab
        // 256000, tied embeddings, four RMSNorms a layer): per layer 3584 × (4096 + 2048 + 2048) + 4096 × 3584 (attention)
        // + 3 × 3584 × 14336 (MLP) + 4 × 3584 = 198,195,200; × 42 = 8,324,198,400; + 256000 × 3584 embeddings + 3584 final norm.
        { "google/gemma-2-9b-it", "gemma-2-9b", 8_324_198_400 + 917_504_000 + 3_584 },
        // exact_params of data/models/mixtral-8x7b.json (safetensors.total; source line in the file).
        { "mistralai/Mixtral-8x7B-Instruct-v0.1", "mixtral-8x7b", 46_702_792_704 },
        // exact_params of data/models/llama-3.1-70b.json, whose config is the Instruct release itself.
        { "meta-llama/Llama-3.1-70B-Instruct", "llama-3.1-70b", 70_553_706_496 },
        // Mistral-7B-v0.3 = v0.1 (7,241,732,096: exact_params of data/models/mistral-7b-v0.1.json) with the vocabulary grown
        // from 32000 to 32768: 768 more rows of 4096 in the embedding and in the untied lm_head.
        { "mistralai/Mistral-7B-Instruct-v0.3", "mistral-7b-v0.3", 7_241_732_096 + (768L * 4096 * 2) },
    };

    [Theory]
    [MemberData(nameof(TypedIds))]
    public void A_typed_instruct_id_resolves_offline_to_its_base_models_exact_count(string id, string alias, long parameters)
    {
        ResolvedModel model = ModelResolver.Resolve(new ModelReference.Named(id), null);

        Assert.Equal(parameters, model.ParameterCount);
        Assert.Equal(id, model.HfId);
        // The name printed in every caption says which catalog model gave the shapes: "… (as llama-3.1-8b)", or the alias
        // itself where the catalog's config is that release.
        Assert.Contains(model.HfId == ModelCatalog.All.Single(m => m.Alias == alias).HfId ? alias : $"{id} (as {alias})", model.Name, StringComparison.Ordinal);
    }

    public static TheoryData<string> Variants() => new(ModelCatalog.Variants.Select(v => v.HfId));

    [Theory]
    [MemberData(nameof(Variants))]
    public void Every_listed_variant_has_its_bases_shapes_and_a_source(string id)
    {
        // The list holds only variants whose tensors are the base's, so the base's count is theirs; what may differ
        // (context length, stored dtype) changes no shape.
        Assert.True(ModelCatalog.TryFind(id, out CatalogModel variant));
        CatalogModel basis = variant.VariantOf!;
        Assert.Equal(basis.Architecture.ParameterCount, variant.Architecture.ParameterCount);
        Assert.Equal(basis.Architecture.Tensors.Tensors.Select(t => $"{t.Name} {string.Join("x", t.Shape)}"), variant.Architecture.Tensors.Tensors.Select(t => $"{t.Name} {string.Join("x", t.Shape)}"));
        Assert.Contains("huggingface.co/" + id + "/", variant.Notes, StringComparison.Ordinal);
    }

    [Fact]
    public void A_variant_keeps_what_its_own_config_sets_differently()
    {
        // Qwen2.5-7B-Instruct's config.json has max_position_embeddings 32768 where the base has 131072; gemma-2-9b-it is
        // stored in bfloat16 where the base config says float32 (data/model-variants.json).
        Assert.True(ModelCatalog.TryFind("Qwen/Qwen2.5-7B-Instruct", out CatalogModel qwen));
        Assert.Equal(32768, qwen.Config.GetProperty("max_position_embeddings").GetInt32());
        Assert.True(ModelCatalog.TryFind("google/gemma-2-9b-it", out CatalogModel gemma));
        Assert.Equal(LlmMemory.Numerics.DataTypes.BF16, gemma.Architecture.StoredType);
    }
}
