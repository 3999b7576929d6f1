namespace LlmMemory.Workloads;

/// <summary>A quantity a measurement can report (docs/scenario.md "What can be measured"): part of the case format, beside the scenario.</summary>
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

/// <summary>Which devices a measurement covers (<c>measured.per</c>).</summary>
public enum MeasurementScope
{
    /// <summary>One device, the most loaded (the default).</summary>
    Gpu,

    /// <summary>Summed over every device of the run.</summary>
    Total,
}
