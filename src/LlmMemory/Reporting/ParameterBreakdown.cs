using LlmMemory.Models;

namespace LlmMemory.Reporting;

/// <summary>Parameter counts grouped the way people talk about them: embeddings, attention, MLP or experts, norms, output head.</summary>
public static class ParameterBreakdown
{
    public static IReadOnlyList<(string Name, long Count)> Of(ModelArchitecture architecture)
    {
        ArgumentNullException.ThrowIfNull(architecture);
        TensorInventory t = architecture.Tensors;
        var rows = new List<(string, long)>
        {
            ("embeddings", t.CountOf(TensorRole.TokenEmbedding) + t.CountOf(TensorRole.PositionEmbedding) + t.CountOf(TensorRole.TokenTypeEmbedding)),
            ("attention", t.CountOf(TensorRole.Attention)),
            ("mlp", t.CountOf(TensorRole.FeedForward)),
        };
        if (architecture.Experts is not null)
        {
            rows.Add(("experts", t.CountOf(TensorRole.Expert)));
            rows.Add(("shared_experts", t.CountOf(TensorRole.SharedExpert)));
            rows.Add(("router", t.CountOf(TensorRole.Router)));
        }

        rows.Add(("norms", t.CountOf(TensorRole.Norm)));
        rows.Add(("output_head", t.CountOf(TensorRole.OutputHead)));
        long other = t.CountOf(TensorRole.Other);
        if (other > 0)
        {
            rows.Add(("other", other));
        }

        return rows;
    }
}
