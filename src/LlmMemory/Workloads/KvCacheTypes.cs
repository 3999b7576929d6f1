using LlmMemory.Numerics;

namespace LlmMemory.Workloads;

/// <summary>The types an engine can store its KV cache in (<c>kv_cache_dtype</c>, <c>v_cache_dtype</c>): one list for every engine.</summary>
/// <remarks>
/// llama.cpp: <c>kv_cache_types</c> in common/arg.cpp (<c>-ctk</c>/<c>-ctv</c>). vLLM: <c>--kv-cache-dtype</c> (auto = the model's
/// 16-bit type, fp8 = fp8_e4m3, fp8_e5m2) in vllm/config/cache.py; SGLang's <c>--kv-cache-dtype</c> offers the same 16-bit and
/// fp8 choices (server_args.py). transformers' default DynamicCache stores K and V in the compute type.
/// </remarks>
public static class KvCacheTypes
{
    private static readonly (DataType Type, bool LlamaCpp, bool Serving)[] Table =
    [
        (DataTypes.F16, true, true), (DataTypes.BF16, true, true), (DataTypes.F32, true, false),
        (DataTypes.F8E4M3, false, true), (DataTypes.F8E5M2, false, true),
        (DataTypes.Q8_0, true, false), (DataTypes.Q5_1, true, false), (DataTypes.Q5_0, true, false), (DataTypes.Q4_1, true, false),
        (DataTypes.Q4_0, true, false), (DataTypes.IQ4_NL, true, false),
    ];

    /// <summary>Every type some engine accepts, in the order offered to people.</summary>
    public static IReadOnlyList<DataType> All { get; } = [.. Table.Select(t => t.Type)];

    /// <summary>The types <paramref name="engine"/> stores its cache in; transformers (and the training engines) only their compute type, given as <c>null</c>.</summary>
    public static IReadOnlyList<DataType> Of(Engine engine) => engine switch
    {
        Engine.LlamaCpp => [.. Table.Where(t => t.LlamaCpp).Select(t => t.Type)],
        Engine.Vllm or Engine.Sglang => [.. Table.Where(t => t.Serving).Select(t => t.Type)],
        _ => [],
    };

    /// <summary>The spelling people type: <c>fp16</c>, <c>fp8</c>, <c>q8_0</c>.</summary>
    public static string Spelling(DataType type)
    {
        ArgumentNullException.ThrowIfNull(type);
        return type == DataTypes.F16 ? "fp16"
            : type == DataTypes.F32 ? "fp32"
            : type == DataTypes.F8E4M3 ? "fp8"
            : type == DataTypes.F8E5M2 ? "fp8_e5m2"
            : type.Name.ToLowerInvariant();
    }
}
