using LlmMemory.Estimation.Replay;

namespace LlmMemory.Tests.Estimation;

/// <summary>
/// transformers 5 <c>eager_attention_forward</c> (models/llama/modeling_llama.py):
/// <code>
/// key_states = repeat_kv(key, module.num_key_value_groups)
/// value_states = repeat_kv(value, module.num_key_value_groups)
/// attn_weights = torch.matmul(query, key_states.transpose(2, 3)) * scaling
/// attn_weights = nn.functional.softmax(attn_weights, dim=-1, dtype=torch.float32).to(query.dtype)
/// attn_output = torch.matmul(attn_weights, value_states)
/// attn_output = attn_output.transpose(1, 2).contiguous()
/// return attn_output, attn_weights
/// </code>
/// The contiguous copy is made inside the function, while the locals <c>key_states</c> and <c>value_states</c> (the
/// repeat_kv copies) are alive; they die only at <c>return</c>.
/// </summary>
public sealed class EagerAttentionOrderTests
{
    [Fact]
    public void The_transposed_copy_is_made_while_the_repeated_keys_and_values_are_alive()
    {
        // b = 1, 8 query heads, 2 key/value heads (repeat_kv × 4), s = 64, head dim 1024, bf16, no grad, no mask. Every tensor
        // is at most 1 MiB (the small pool, split to the 512 B-rounded size, so allocated bytes are tensor bytes):
        //   q                 1·8·64·1024·2 = 1,048,576      k, v   1·2·64·1024·2 = 262,144 each
        //   repeat_kv copies  k, v to 8 heads: 1,048,576 each
        //   scores bf16       1·8·64·64·2 = 65,536; the fp32 softmax input copy and output 131,072 each
        //   attn_output       [1, 8, 64, 1024] bf16: 1,048,576; its transposed contiguous copy 1,048,576
        // At the copy: inputs 1,572,864 + repeat_kv copies 2,097,152 + probabilities 65,536 + attn_output 1,048,576
        //   + the copy 1,048,576 = 5,832,704.
        // Every other moment is lower: q @ kᵀ holds q's contiguous copy (q is RoPE's output, in the [b, s, a, d] layout of the
        // projection, so matmul's reshape to [b·a, s, d] copies it) with the scores: 1,572,864 + 2,097,152 + 1,048,576
        // + 65,536 = 4,784,128; the softmax 1,572,864 + 2,097,152 + 65,536 + 2 · 131,072 = 3,997,696.
        // Freeing the repeat_kv copies before the transposed copy would make 4,784,128 the peak.
        var s = new ReplayEngine(capacity: null, workspaceBytes: 0, AllocatorSettings.Default) { GradEnabled = false };
        Tensor q = s.Empty([1, 8, 64, 1024], ScalarType.BFloat16);
        Tensor k = s.Empty([1, 2, 64, 1024], ScalarType.BFloat16);
        Tensor v = s.Empty([1, 2, 64, 1024], ScalarType.BFloat16);

        (Tensor output, Tensor probabilities) = Blocks.EagerAttention(s, q, k, v, mask: null, repeats: 4, transposedCopy: true);

        Assert.Equal(5_832_704, s.Allocator.PeakAllocated);
        Assert.Equal([1, 64, 8, 1024], output.Shape);
        // After the call: the inputs, the copy and the probabilities (1,572,864 + 1,048,576 + 65,536).
        Assert.Equal(2_686_976, s.Allocator.Allocated);
        Blocks.Release(output, probabilities);
    }
}
