using LlmMemory.Estimation.Weights;
using LlmMemory.Models;

namespace LlmMemory.Estimation.Inference;

/// <summary>One pipeline stage of a vLLM server: the decoder layers its GPUs hold and the weight tensors that come with them.</summary>
/// <param name="Index">Pipeline rank, 0 first.</param>
/// <param name="FirstLayer">Its first decoder layer.</param>
/// <param name="Layers">How many decoder layers it holds.</param>
/// <param name="Weights">The tensors it holds, whole (tensor parallelism slices them afterwards).</param>
internal sealed record PipelineStage(int Index, int FirstLayer, int Layers, WeightLayout Weights);

/// <summary>How vLLM splits a model over <c>--pipeline-parallel-size</c> GPUs (groups of tensor-parallel GPUs).</summary>
internal static class PipelineStages
{
    /// <summary>
    /// Layers per stage as vLLM's <c>get_pp_indices</c> splits them (vllm/distributed/utils.py, the same from v0.5 to v0.19;
    /// its tests/distributed/test_pipeline_partition.py pins 5 layers over 3 stages as 2, 2, 1): an even share each, and
    /// the remainder one apiece to the stages before the last, counting back from the second to last, because the last
    /// also runs the final norm and the head. <c>VLLM_PP_LAYER_PARTITION</c> overrides the split (<see cref="Given"/>).
    /// </summary>
    public static int[] Split(int layers, int pp)
    {
        int[] partitions = Enumerable.Repeat(layers / pp, pp).ToArray();
        for (int i = 2; i < (layers % pp) + 2; i++)
        {
            partitions[pp - i]++;
        }

        return partitions;
    }

    /// <summary>
    /// A split as <c>VLLM_PP_LAYER_PARTITION</c> gives it, checked as <c>get_pp_indices</c> checks it: comma-separated
    /// integers, one per stage, summing to the layer count; null when it is not a valid split, with the reason.
    /// </summary>
    public static int[]? Given(string partition, int layers, int pp, out string? reason)
    {
        ArgumentNullException.ThrowIfNull(partition);
        string[] parts = partition.Split(',');
        int[] split = parts.Select(p => int.TryParse(p.Trim(), out int n) && n > 0 ? n : 0).ToArray();
        reason = split.Contains(0) ? "which is not a list of positive layer counts such as 20,12"
            : split.Length != pp ? $"{split.Length} stages for parallel.pp {pp}"
            : split.Sum() != layers ? $"{split.Sum()} layers, not the model's {layers}"
            : null;
        return reason is null ? split : null;
    }

    /// <summary>
    /// Each stage's tensors (vllm/model_executor/models/llama.py and the models built on <c>make_layers</c>): the decoder layers
    /// of its range; the embeddings on the first stage; the final norm and the head on the last, which with tied embeddings
    /// builds its own embedding table for the head (<c>embed_tokens</c> exists on the first rank, and on the last when
    /// <c>tie_word_embeddings</c>). Other tensors outside the layers go with the embeddings. With one stage it is the model.
    /// </summary>
    public static IReadOnlyList<PipelineStage> Of(ModelArchitecture model, WeightLayout layout, IReadOnlyList<int> split)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(layout);
        ArgumentNullException.ThrowIfNull(split);
        int pp = split.Count;
        if (pp == 1)
        {
            return [new PipelineStage(0, 0, model.LayerCount, layout)];
        }

        var stages = new PipelineStage[pp];
        int first = 0;
        for (int s = 0; s < pp; s++)
        {
            (int from, int to, bool isFirst, bool isLast) = (first, first + split[s], s == 0, s == pp - 1);
            StoredTensor[] tensors = layout.Tensors.Where(t => t.Tensor.Layer is int layer
                ? layer >= from && layer < to
                : IsHeadSide(t.Tensor) ? isLast : isFirst || (isLast && model.TiedEmbeddings && t.Tensor.Role == TensorRole.TokenEmbedding)).ToArray();
            stages[s] = new PipelineStage(s, from, split[s], new WeightLayout(tensors));
            first = to;
        }

        return stages;
    }

    /// <summary>The head and the final norm (the norm outside every layer) live on the last stage.</summary>
    private static bool IsHeadSide(TensorSpec t) => t.Role is TensorRole.OutputHead or TensorRole.Norm;
}
