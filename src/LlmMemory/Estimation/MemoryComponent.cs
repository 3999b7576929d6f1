namespace LlmMemory.Estimation;

/// <summary>One part of an estimate: what it holds, its bytes, and the formula with the numbers substituted.</summary>
/// <remarks>
/// Made only by <see cref="Of"/>, from a <see cref="Estimation.Formula"/>: the bytes are the formula's value and the text is
/// the formula's, so a printed formula is its number.
/// </remarks>
public sealed record MemoryComponent
{
    private MemoryComponent(string name, ComponentKind kind, ByteSize bytes, string formula, Residence residence, ByteSize? allDevices, Counter counter)
    {
        Name = name;
        Kind = kind;
        Bytes = bytes;
        Formula = formula;
        Residence = residence;
        AllDevices = allDevices;
        Counter = counter;
    }

    /// <summary>Short snake_case name, stable in JSON (<c>weights</c>, <c>kv_cache</c>, <c>optimizer_states</c>).</summary>
    public string Name { get; }

    /// <summary>What the bytes are, for grouping and for picking measured quantities.</summary>
    public ComponentKind Kind { get; }

    /// <summary>Bytes on the most loaded device (or in host memory for <see cref="Residence.Host"/>).</summary>
    public ByteSize Bytes { get; }

    /// <summary>How the bytes follow from the inputs, numbers substituted ("8,030,261,248 params × 2 B (bf16)"), then a remark after "; ".</summary>
    public string Formula { get; }

    /// <summary>Where the bytes live.</summary>
    public Residence Residence { get; }

    /// <summary>Bytes summed over every device of the run, when it differs from <see cref="Bytes"/> × devices.</summary>
    public ByteSize? AllDevices { get; }

    /// <summary>Which memory counter sees the bytes: live framework tensors, the allocator's cache, or only the device total.</summary>
    public Counter Counter { get; }

    /// <summary>
    /// A component whose bytes are its formula's value and whose text is the formula's, with an optional remark after "; "
    /// (a remark says why, in words; the numbers are all in the formula).
    /// </summary>
    public static MemoryComponent Of(string name, ComponentKind kind, Formula formula, string? remark = null,
        Residence residence = Residence.Device, Counter counter = Counter.Allocated, ByteSize? allDevices = null)
    {
        ArgumentNullException.ThrowIfNull(formula);
        return new MemoryComponent(name, kind, new ByteSize(checked((long)Math.Round(formula.Value))), remark is null ? formula.ToString() : $"{formula}; {remark}",
            residence, allDevices, counter);
    }
}

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
