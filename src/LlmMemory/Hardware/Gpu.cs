namespace LlmMemory.Hardware;

/// <summary>A device from the catalog.</summary>
/// <param name="Id">Catalog id (<c>h100-80gb</c>, <c>rtx-4090</c>, <c>cpu</c>).</param>
/// <param name="Name">Vendor name.</param>
/// <param name="Vendor"><c>nvidia</c>, <c>amd</c>, <c>apple</c> or <c>cpu</c>.</param>
/// <param name="Memory">Capacity as the vendor states it, in exact bytes (GPU "GB" are GiB: data/GPUS.md); null for <c>cpu</c>.</param>
/// <param name="Usable">What software can allocate: the CUDA/ROCm device total (<c>cudaMemGetInfo</c>), or Apple's GPU working-set share; null when unknown.</param>
/// <param name="Bf16">Hardware bf16 support; null when it depends on the exact chip.</param>
/// <param name="Fp8">Hardware fp8 support; null when it depends on the exact chip.</param>
/// <param name="Source">Datasheet and readings the numbers come from.</param>
/// <param name="Marketed">The vendor's own wording of the capacity ("80 GB HBM3").</param>
/// <param name="UsableBasis">Which reading <paramref name="Usable"/> comes from (CUDA total, nvidia-smi, or a share of unified memory).</param>
public sealed record Gpu(string Id, string Name, string Vendor, ByteSize? Memory, ByteSize? Usable, bool? Bf16, bool? Fp8, string Source,
    string? Marketed = null, string? UsableBasis = null)
{
    /// <summary>CUDA compute capability (<c>9.0</c> for Hopper); null for other vendors and unknown chips.</summary>
    public Version? ComputeCapability { get; init; }

    /// <summary>What <c>nvidia-smi --query-gpu=memory.total</c> prints, in MiB (data/gpus.json <c>nvidia_smi_total_mib</c>); null when unknown or not NVIDIA.</summary>
    public long? NvidiaSmiTotalMib { get; init; }

    /// <summary>The budget an estimate must fit in: the usable total when known, else the stated capacity.</summary>
    public ByteSize? Budget => Usable ?? Memory;

    /// <summary>True for the host-memory pseudo-device.</summary>
    public bool IsHost => Id == "cpu";
}
