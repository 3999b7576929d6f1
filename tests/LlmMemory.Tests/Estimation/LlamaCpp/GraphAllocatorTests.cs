using LlmMemory.Estimation.LlamaCpp;
using LlmMemory.Estimation.Weights;
using LlmMemory.Numerics;

namespace LlmMemory.Tests.Estimation.LlamaCpp;

/// <summary>The ggml-alloc port (ggml-alloc.c ggml_dyn_tallocr, ggml_gallocr_alloc_graph_impl).</summary>
public sealed class GraphAllocatorTests
{
    [Fact]
    public void Allocation_takes_the_smallest_free_block_that_fits_before_cutting_from_the_end()
    {
        // Blocks of 100, 50 and 30 (alignment 1); free the 100 and the 30: free list [0,100) [150,180) and the tail.
        // A request for 20 takes the smaller hole at 150, not the first one.
        var allocator = new DynamicAllocator(1);
        long a = allocator.Allocate(100);
        allocator.Allocate(50);
        long c = allocator.Allocate(30);
        allocator.Allocate(10);
        allocator.Free(a, 100);
        allocator.Free(c, 30);
        Assert.Equal(150, allocator.Allocate(20));
        Assert.Equal(190, allocator.MaxSize);
    }

    [Fact]
    public void Sizes_are_padded_to_the_buffer_alignment()
    {
        var allocator = new DynamicAllocator(32);
        allocator.Allocate(1);
        Assert.Equal(32, allocator.Allocate(33));
        Assert.Equal(96, allocator.MaxSize);
    }

    [Fact]
    public void An_in_place_op_takes_over_its_source_and_outputs_are_never_freed()
    {
        // x = input (4 KiB F32). y = ADD(x, x) cannot reuse x: ADD reads it twice, so x has two pending consumers. z = MUL(y, w)
        // takes over y (one consumer, same type and shape). x is freed after y; z, an output, is never freed: the buffer is x + y.
        var b = new GraphFactory(new Dictionary<string, DataType>());
        GraphTensor x = b.Leaf("x", DataTypes.F32, [1024], input: true);
        GraphTensor w = b.Weight("w", 1024);
        GraphTensor y = b.F32("y", GgmlOp.Add, [1024], x, x);
        GraphTensor z = b.F32("z", GgmlOp.Mul, [1024], y, w);
        z.Flags |= TensorFlags.Output;
        b.Expand(z);
        Assert.Equal(2 * 4096, GraphAllocator.Run(b.Graph, 32));
    }
}
