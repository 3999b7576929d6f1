using LlmMemory.Models;

namespace LlmMemory.Estimation.Replay;

/// <summary>
/// <c>BertForSequenceClassification</c> as transformers ran it in 2022 (<c>modeling_bert.py</c>): embeddings (word +
/// token type, then positions added in place), LayerNorm and dropout; eager self-attention with the extended mask, dropout
/// on the probabilities; the pooler (first token, dense, tanh) and a classifier of <see cref="Labels"/> outputs with its
/// cross-entropy loss. Dropout (p = 0.1, <c>hidden_dropout_prob</c>) keeps a bool mask per dropped tensor in training.
/// </summary>
internal sealed class BertProgram : ModelProgram
{
    /// <summary><c>PretrainedConfig.num_labels</c> default, the two-class task of the transformers single-GPU guide.</summary>
    public const int Labels = 2;

    public BertProgram(ReplayEngine engine, ModelArchitecture model, ReplayOptions options) : base(engine, model, options)
    {
        long positions = model.MaxPositions ?? 512;
        Weights = new ModelWeights(engine, model, options, Enumerable.Range(0, model.Tensors.Tensors.Count).Select(i => new[] { i }),
            [(positions, ScalarType.Int64), (positions, ScalarType.Int64)]);
        ScalarType type = options.Weights[0].Type;
        Weights.AddParameter(engine, "classifier.weight", [Labels, model.HiddenSize], type);
        Weights.AddParameter(engine, "classifier.bias", [Labels], type);
        LoadedBytes = engine.Allocator.Allocated;
        AddAdapters();
    }

    public override ForwardResult Forward(bool labels, bool training)
    {
        ReplayEngine s = Engine;
        (long b, long n, long h) = (Ids.Shape[0], Ids.Shape[1], Model.HiddenSize);
        s.Layer = -1;
        Tensor embedded = Embeddings(b, n, training);
        Tensor x = embedded.Retain();
        // BertModel.forward: attention_mask = ones(b, s); extended = (1.0 - mask[:, None, None, :]) * finfo.min.
        Tensor ones = s.Empty([b, n], x.Type);
        Tensor inverted = s.AddScalar(Operand.Take(s.View(ones, [b, 1, 1, n])));
        Tensor mask = s.Scale(Operand.Take(inverted));
        string step = s.Phase.Split(':')[0];
        for (int layer = 0; layer < Model.LayerCount; layer++)
        {
            s.SetPhase($"{step}:layer{layer}");
            s.Layer = layer;
            int li = layer;
            x = Blocks.Rebind(x, training && Options.Checkpointing
                ? s.Checkpoint(input => Layer(li, input, mask, training), x, [mask], Options.OffloadCheckpoints)
                : Layer(layer, x, mask, training));
        }

        s.Layer = ReplayEngine.HeadLayer;
        s.SetPhase($"{step}:head");
        Tensor first = Blocks.Select(s, x, [b, h]);
        Tensor pooled = s.Unary(Operand.Take(Linear("bert.pooler.dense.weight", first)), UnaryKind.Tanh);
        first.Release();
        Blocks.Release(embedded, ones, mask); // BertModel.forward returns: its embedding output and masks go
        Tensor logits = Linear("classifier.weight", Operand.Take(Dropout(pooled, training)));
        pooled.Release();
        Tensor? loss = null;
        if (labels)
        {
            MemoryTag tag = s.Tag;
            s.Tag = MemoryTag.Loss;
            Tensor target = s.Empty([b], ScalarType.Int64);
            Tensor logProbabilities = s.LogSoftmax(Operand.Take(s.To(logits, ScalarType.Float32)));
            loss = s.NllLoss(logProbabilities, target);
            Blocks.Release(target, logProbabilities);
            s.Tag = tag;
        }

        x.Release();
        return new ForwardResult(loss, [logits], null);
    }

    /// <summary>
    /// <c>BertEmbeddings</c>: <c>embeddings = word(ids) + token_type(ids0)</c>, <c>embeddings += position(pos)</c> in place,
    /// LayerNorm, dropout.
    /// </summary>
    private Tensor Embeddings(long b, long n, bool training)
    {
        ReplayEngine s = Engine;
        const string P = "bert.embeddings.";
        Tensor tokenTypes = Weights.Buffers[1].Alias([b, n]);
        Tensor positions = Weights.Buffers[0].Alias([1, n]);
        Tensor x = s.Add(Operand.Take(s.Embedding(Ids, Weights[P + "word_embeddings.weight"])),
            Operand.Take(s.Embedding(tokenTypes, Weights[P + "token_type_embeddings.weight"])));
        s.AddInPlace(x, Operand.Take(s.Embedding(positions, Weights[P + "position_embeddings.weight"])));
        Blocks.Release(tokenTypes, positions);
        x = Blocks.Rebind(x, LayerNorm(x, P + "LayerNorm"));
        return Blocks.Rebind(x, Dropout(x, training));
    }

    /// <summary><c>BertLayer</c>: attention (self-attention, then dense, dropout, LayerNorm of the residual), intermediate (dense, GELU), output.</summary>
    private Tensor Layer(int layer, Tensor x, Tensor mask, bool training)
    {
        ReplayEngine s = Engine;
        string p = $"bert.encoder.layer.{layer}.";
        Tensor context = SelfAttention(p + "attention.self.", x, mask, training);
        Tensor attention = Residual(p + "attention.output.", context, x, training);
        context.Release();
        Tensor intermediate = s.Unary(Operand.Take(Linear(p + "intermediate.dense.weight", attention)), UnaryKind.Gelu);
        Tensor output = Residual(p + "output.", intermediate, attention, training);
        Blocks.Release(intermediate, attention);
        return output;
    }

    /// <summary>
    /// <c>BertSelfAttention</c> (eager): q, k, v per head; <c>matmul(q, kᵀ)</c> copies both permuted operands;
    /// <c>/ √d</c>, <c>+ mask</c> (fp32 under fp16 autocast, the mask being fp32), softmax, dropout, <c>matmul(probs, v)</c>,
    /// the heads merged by a contiguous copy. The masked scores stay referenced until the method returns.
    /// </summary>
    private Tensor SelfAttention(string p, Tensor x, Tensor mask, bool training)
    {
        ReplayEngine s = Engine;
        (long b, long n) = (x.Shape[0], x.Shape[1]);
        (long a, long d) = (Model.AttentionHeadCount, Model.HeadDimension);
        Tensor query = Linear(p + "query.weight", x);
        Tensor key = s.View(Operand.Take(Linear(p + "key.weight", x)), [b, a, n, d]);
        Tensor value = s.View(Operand.Take(Linear(p + "value.weight", x)), [b, a, n, d]);
        Tensor q = s.View(query, [b, a, n, d]);
        Tensor scores = s.Scale(Operand.Take(s.Matmul(q, key, [b, a, n, n], copyA: true, copyB: true)));
        scores = Blocks.Rebind(scores, s.Add(scores, mask));
        Tensor probabilities = s.Softmax(scores, scores.Type);
        probabilities = Blocks.Rebind(probabilities, Dropout(probabilities, training));
        Tensor context = s.Matmul(probabilities, value, [b, a, n, d], copyB: true);
        context = s.ContiguousCopy(Operand.Take(s.View(Operand.Take(context), [b, n, a, d])));
        Tensor merged = s.View(Operand.Take(context), [b, n, a * d]);
        Blocks.Release(query, key, value, q, scores, probabilities);
        return merged;
    }

    /// <summary><c>BertSelfOutput</c> / <c>BertOutput</c>: <c>LayerNorm(dropout(dense(h)) + input)</c>.</summary>
    private Tensor Residual(string p, Tensor h, Tensor input, bool training)
    {
        ReplayEngine s = Engine;
        Tensor dense = Linear(p + "dense.weight", h);
        dense = Blocks.Rebind(dense, Dropout(dense, training));
        Tensor sum = s.Add(dense, input);
        Tensor y = LayerNorm(sum, p + "LayerNorm");
        Blocks.Release(sum, dense);
        return y;
    }

    private Tensor Dropout(Tensor x, bool training) => training ? Engine.Dropout(x) : x.Retain();

    private Tensor LayerNorm(Tensor x, string module) => Blocks.LayerNorm(Engine, x, Weights[module + ".weight"], Weights[module + ".bias"]);
}
