namespace LlmMemory.Formats.Gguf;

/// <summary>Metadata key names (llama.cpp <c>gguf-py/gguf/constants.py</c>, <c>class Keys</c>); <c>{0}</c> is the architecture.</summary>
public static class GgufKeys
{
    public const string Architecture = "general.architecture";
    public const string Alignment = "general.alignment";
    public const string Name = "general.name";
    public const string FileType = "general.file_type";
    public const string SplitCount = "split.count";
    public const string SplitIndex = "split.no";
    public const string SplitTensors = "split.tensors.count";
    public const string Tokens = "tokenizer.ggml.tokens";

    public const string BlockCount = "{0}.block_count";
    public const string ContextLength = "{0}.context_length";
    public const string EmbeddingLength = "{0}.embedding_length";
    public const string FeedForwardLength = "{0}.feed_forward_length";
    public const string VocabSize = "{0}.vocab_size";
    public const string HeadCount = "{0}.attention.head_count";
    public const string HeadCountKv = "{0}.attention.head_count_kv";
    public const string KeyLength = "{0}.attention.key_length";
    public const string ValueLength = "{0}.attention.value_length";
    public const string KeyLengthMla = "{0}.attention.key_length_mla";
    public const string ValueLengthMla = "{0}.attention.value_length_mla";
    public const string QLoraRank = "{0}.attention.q_lora_rank";
    public const string KvLoraRank = "{0}.attention.kv_lora_rank";
    public const string SlidingWindow = "{0}.attention.sliding_window";
    public const string RopeDimensions = "{0}.rope.dimension_count";
    public const string ExpertCount = "{0}.expert_count";
    public const string ExpertUsedCount = "{0}.expert_used_count";
    public const string ExpertFeedForwardLength = "{0}.expert_feed_forward_length";
    public const string ExpertSharedFeedForwardLength = "{0}.expert_shared_feed_forward_length";
    public const string ExpertSharedCount = "{0}.expert_shared_count";
    public const string LeadingDenseBlockCount = "{0}.leading_dense_block_count";
    public const string FinalLogitSoftcapping = "{0}.final_logit_softcapping";
}
