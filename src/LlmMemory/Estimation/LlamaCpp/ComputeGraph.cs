namespace LlmMemory.Estimation.LlamaCpp;

/// <summary>A ggml compute graph: leafs and nodes in the order <c>ggml_build_forward_expand</c> visits them.</summary>
internal sealed class ComputeGraph
{
    private readonly HashSet<GraphTensor> _visited = new(ReferenceEqualityComparer.Instance);

    public List<GraphTensor> Leafs { get; } = [];

    public List<GraphTensor> Nodes { get; } = [];

    /// <summary>
    /// <c>ggml_build_forward_expand</c>: a depth-first walk over the sources (src[0] first) that appends each tensor after its
    /// sources, leafs (op NONE) to <see cref="Leafs"/>, the others to <see cref="Nodes"/>; a tensor already visited is skipped.
    /// </summary>
    public GraphTensor Expand(GraphTensor tensor)
    {
        var stack = new Stack<(GraphTensor Tensor, int Next)>();
        stack.Push((tensor, 0));
        while (stack.Count > 0)
        {
            (GraphTensor current, int next) = stack.Pop();
            if (next == 0 && !_visited.Add(current))
            {
                continue;
            }

            if (next < current.Sources.Count)
            {
                stack.Push((current, next + 1));
                if (current.Sources[next] is { } source && !_visited.Contains(source))
                {
                    stack.Push((source, 0));
                }

                continue;
            }

            (current.IsLeaf ? Leafs : Nodes).Add(current);
        }

        return tensor;
    }
}
