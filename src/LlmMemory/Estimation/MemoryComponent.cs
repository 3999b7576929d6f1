namespace LlmMemory.Estimation;

/// <summary>One part of an estimate: what it holds, its bytes, and the formula with the numbers substituted.</summary>
/// <param name="Name">Short snake_case name, stable in JSON (<c>weights</c>, <c>kv_cache</c>, <c>optimizer_states</c>).</param>
/// <param name="Kind">What the bytes are, for grouping and for picking measured quantities.</param>
/// <param name="Bytes">Bytes on the most loaded device (or in host memory for <see cref="Residence.Host"/>).</param>
/// <param name="Formula">How the bytes follow from the inputs, numbers substituted: "8,030,261,248 params × 2 B".</param>
/// <param name="Residence">Where the bytes live.</param>
/// <param name="AllDevices">Bytes summed over every device of the run, when it differs from <see cref="Bytes"/> × devices.</param>
/// <param name="Counter">Which memory counter sees the bytes: live framework tensors, the allocator's cache, or only the device total.</param>
public sealed record MemoryComponent(string Name, ComponentKind Kind, ByteSize Bytes, string Formula,
    Residence Residence = Residence.Device, ByteSize? AllDevices = null, Counter Counter = Counter.Allocated);

/// <summary>
/// Which counter includes a component: <c>torch.cuda.max_memory_allocated</c> sees live tensors; <c>max_memory_reserved</c>
/// adds the caching allocator's free cached blocks; nvidia-smi (device used) adds what lives outside the allocator — the
/// CUDA context, NCCL buffers, CUDA managed memory of paged optimizers.
/// </summary>
public enum Counter
{
    /// <summary>Live tensors of the framework's allocator.</summary>
    Allocated,

    /// <summary>Cached by the allocator but not live (reserved − allocated).</summary>
    Reserved,

    /// <summary>Outside the framework's allocator: visible only in the device total.</summary>
    Device,
}

/// <summary>What a component's bytes are.</summary>
public enum ComponentKind
{
    Weights,
    MasterWeights,
    Gradients,
    OptimizerStates,
    Adapters,
    Activations,
    Logits,
    KvCache,
    ComputeBuffer,
    OutputBuffer,
    Workspace,
    Communication,

    /// <summary>Memory the framework's caching allocator holds beyond live tensors (reserved − allocated).</summary>
    AllocatorReserve,

    /// <summary>CUDA context, loaded kernels and other memory outside the framework's allocator.</summary>
    Runtime,
}

/// <summary>Where a component lives.</summary>
public enum Residence
{
    /// <summary>On the accelerator (or on the host when the device is <c>cpu</c>).</summary>
    Device,

    /// <summary>In host RAM next to a GPU run (offloaded states, llama.cpp host buffers, mmapped layers).</summary>
    Host,
}
