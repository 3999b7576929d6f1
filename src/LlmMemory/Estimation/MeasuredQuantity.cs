namespace LlmMemory.Estimation;

/// <summary>A quantity a measurement can report (docs/scenario.md "What can be measured").</summary>
public enum MeasuredQuantity
{
    /// <summary>Total parameter count.</summary>
    Parameters,

    /// <summary>Parameters that receive gradients.</summary>
    TrainableParameters,

    /// <summary>Bytes of weights resident on the device.</summary>
    Weights,

    /// <summary>Bytes of KV cache.</summary>
    KvCache,

    /// <summary>Engine scratch for the forward graph (llama.cpp compute buffer).</summary>
    ComputeBuffer,

    /// <summary>Most bytes held by live tensors at once (<c>torch.cuda.max_memory_allocated</c>).</summary>
    PeakAllocated,

    /// <summary>Most bytes the caching allocator held (<c>torch.cuda.max_memory_reserved</c>).</summary>
    PeakReserved,

    /// <summary>All device memory in use, CUDA context included (nvidia-smi).</summary>
    DeviceUsed,
}
