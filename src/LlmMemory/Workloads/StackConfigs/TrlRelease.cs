using System.Text.Json.Nodes;

namespace LlmMemory.Workloads.StackConfigs;

/// <summary>
/// TRL's <c>SFTConfig</c> defaults by release, for the keys an SFTConfig file leaves out (<c>trl_version</c>, this tool's key:
/// TRL's files carry no version). <c>SFTConfig</c> subclasses transformers' <c>TrainingArguments</c> and overrides some of its
/// defaults; a key the file leaves out gets TRL's default of the release named, not <c>TrainingArguments</c>'.
/// </summary>
/// <remarks>
/// Sources, each a default that moves memory:
/// <list type="bullet">
/// <item><c>per_device_train_batch_size</c> 8: <c>TrainingArguments</c>' own default, which no <c>SFTConfig</c> overrides.</item>
/// <item>the sequence length 1024: <c>max_length: int | None = field(default=1024)</c> ("When packing is enabled, this value
/// sets the sequence length"; trl/trainer/sft_config.py); before the rename, <c>max_seq_length=None</c>, which
/// <c>SFTTrainer</c> replaced by <c>min(tokenizer.model_max_length, 1024)</c>. Without packing it is the truncation length,
/// which a batch reaches when one of its samples is that long.</item>
/// <item><c>gradient_checkpointing</c> True and <c>bf16</c> on unless <c>fp16</c> is set: TRL PR #3510 ("🎀 New defaults:
/// `gradient_checkpointing=True`", opened 2025-05-29) and PR #3515 ("🎀 New defaults: `bf16=True`", 2025-05-30), opened as
/// 0.18 came out; 0.19.0 is taken as the first release with them (its tag was not read: an assumption); sft_config.py as read later writes
/// <c>gradient_checkpointing: bool = field(default=True)</c> and <c>self.bf16 = not (self.fp16) if self.bf16 is None else
/// self.bf16</c> (and trl/trainer/base_config.py, where 1.x moved them).</item>
/// <item><c>loss_type</c> <c>"chunked_nll"</c> unless <c>use_liger_kernel</c>: TRL PR #5846 ("Default SFT loss to
/// chunked_nll"), released in 1.7.0 (PR #5997 announces it for 1.7 and warns in 1.6).</item>
/// </list>
/// <c>SFTConfig</c> itself appeared in 0.9 (before it <c>SFTTrainer</c> took <c>TrainingArguments</c> and its own keyword
/// arguments); releases before 0.9 and after 1.7, the newest read, are refused.
/// </remarks>
internal static class TrlRelease
{
    public const string Key = "trl_version";

    /// <summary>The first release with <c>SFTConfig</c>.</summary>
    public static readonly Version Oldest = new(0, 9, 0);

    /// <summary>The first release whose <c>SFTConfig</c> defaults <c>gradient_checkpointing</c> to True and <c>bf16</c> to on (PRs #3510, #3515).</summary>
    public static readonly Version CheckpointingAndBf16 = new(0, 19, 0);

    /// <summary>The first release whose SFT loss defaults to <c>chunked_nll</c> (PR #5846).</summary>
    public static readonly Version ChunkedNll = new(1, 7, 0);

    /// <summary>The newest release read.</summary>
    public static readonly Version Newest = new(1, 7, 0);

    /// <summary>The per-device batch, <c>TrainingArguments</c>' default.</summary>
    public const int Batch = 8;

    /// <summary>The sequence length: <c>max_length</c>'s default (before it, <c>min(tokenizer.model_max_length, 1024)</c>).</summary>
    public const int MaxLength = 1024;

    /// <summary>The release <c>trl_version</c> names, or null when the file names none; an unknown or unmodelled release is an error naming the key.</summary>
    public static Version? Read(ConfigKeys keys)
    {
        JsonNode? node = keys.Peek(Key);
        if (node is null)
        {
            return null;
        }

        // A string only: a YAML or JSON number loses its trailing zeros (0.10 reads as 0.1).
        string text = keys.Text(Key)!;
        Version? release = TransformersRelease.TryParse(text);
        string? problem = release is null ? "which is not a TRL release (such as 0.19.0 or 1.7.0)"
            : release < Oldest ? $"older than SFTConfig, which TRL {Oldest.ToString(2)} introduced (the releases modelled are {Oldest.ToString(2)} to {Newest.ToString(2)})"
            : release.Major > Newest.Major || (release.Major == Newest.Major && release.Minor > Newest.Minor)
                ? $"newer than the TRL releases modelled ({Oldest.ToString(2)} to {Newest.ToString(2)}), whose defaults were read; give {Newest.ToString(2)} if its SFTConfig defaults still hold"
            : null;
        return problem is null ? release : throw keys.Error(Key, $"is {ConfigKeys.Shown(node)}, {problem}");
    }
}
