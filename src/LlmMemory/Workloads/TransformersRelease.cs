namespace LlmMemory.Workloads;

/// <summary>
/// transformers releases (<c>engine_options.version</c> for engine <c>transformers</c>), where a release changed what the
/// causal-LM loss of a training step holds. Llama and Mistral's <c>*ForCausalLM.forward</c> and
/// <c>src/transformers/loss/loss_utils.py</c> <c>ForCausalLMLoss</c>, read in each form below.
/// </summary>
public static class TransformersRelease
{
    /// <summary>The oldest release taken: transformers 4 (the loss in the model's forward, as 4.45 writes it).</summary>
    public static readonly Version Oldest = new(4, 0, 0);

    /// <summary>
    /// The first release whose models call <c>self.loss_function(logits, labels, self.vocab_size, **loss_kwargs)</c>
    /// (loss/loss_utils.py, new in 4.46): the model keeps its 16-bit logits for its output and the loss upcasts a copy
    /// (<c>logits = logits.float()</c>), then <c>shift_logits = logits[..., :-1, :].contiguous()</c>. Before it (4.45
    /// <c>LlamaForCausalLM</c>/<c>MistralForCausalLM</c>) the forward rebinds <c>logits = logits.float()</c> when labels are
    /// given, so the 16-bit logits die there and the output holds the fp32 ones.
    /// </summary>
    public static readonly Version LossFunction = new(4, 46, 0);

    /// <summary>
    /// The first release whose <c>ForCausalLMLoss</c> pads the labels instead of copying the shifted logits
    /// (<c>labels = nn.functional.pad(labels, (0, 1), value=ignore_index)</c>; <c>logits.view(-1, vocab_size)</c>): transformers
    /// PR 35646 "Optimize ForCausalLMLoss by removing unnecessary contiguous() call to reduce memory overhead", opened
    /// 2025-01-13, after 4.48.0 (2025-01-10). The 4.48.1 source was not read; fms-acceleration's 4.48.1 run holding 2 B per
    /// logit more than its 4.45.2 run fits only the shifted copy there, so 4.49.0 is taken as the first with the padding.
    /// </summary>
    public static readonly Version PaddedLabels = new(4, 49, 0);

    /// <summary>The newest release modelled, and the one assumed when none is given: the project's own measured runs (5.17.0).</summary>
    public static readonly Version Newest = new(5, 17, 0);

    /// <summary>Reads <c>major.minor</c> or <c>major.minor.patch</c> (a leading <c>v</c> allowed); null when it is not one.</summary>
    public static Version? TryParse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        return Version.TryParse(text.Trim().TrimStart('v'), out Version? v) && v.Revision < 0 ? new Version(v.Major, v.Minor, Math.Max(0, v.Build)) : null;
    }
}
