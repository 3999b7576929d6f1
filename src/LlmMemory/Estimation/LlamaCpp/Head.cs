namespace LlmMemory.Estimation.LlamaCpp;

/// <summary>The output head both graph eras end with: final norm, then the logits; both are graph outputs (never freed).</summary>
internal static class Head
{
    public static void Build(GraphFactory b, GraphShape s, GraphTensor inpL, GraphTensor tokenEmbedding, int outputs)
    {
        int e = s.Embedding;
        bool layerNorm = s.Family == GraphFamily.GptNeoX;
        GraphTensor n = b.F32("norm", layerNorm ? GgmlOp.Norm : GgmlOp.RmsNorm, inpL.Ne, inpL);
        GraphTensor cur = b.F32("result_norm", GgmlOp.Mul, inpL.Ne, n, b.Weight("output_norm.weight", e));
        if (layerNorm)
        {
            cur = b.F32("result_norm_b", GgmlOp.Add, inpL.Ne, cur, b.Weight("output_norm.bias", e));
        }

        cur.Flags |= TensorFlags.Output;
        // Tied embeddings: llama.cpp creates output.weight as a TENSOR_DUPLICATED copy of token_embd in the output layer's
        // buffer, so for scheduling it is a weight of the output layer.
        GraphTensor output = s.TiedEmbeddings
            ? b.Leaf("output.weight", tokenEmbedding.Type, [e, s.Vocabulary], external: true)
            : b.Weight("output.weight", e, s.Vocabulary);
        GraphTensor logits = b.F32("result_output", GgmlOp.MulMat, [s.Vocabulary, outputs], output, cur);
        logits.Flags |= TensorFlags.Output;
        b.Expand(logits);
    }
}
