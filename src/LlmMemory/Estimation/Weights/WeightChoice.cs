using LlmMemory.Models;
using LlmMemory.Numerics;
using LlmMemory.Workloads;

namespace LlmMemory.Estimation.Weights;

/// <summary>Which weight format a scenario means, and the resulting layout.</summary>
internal static class WeightChoice
{
    /// <summary>
    /// The scenario's <c>weights</c>; else the checkpoint's own quantization (<c>quantization_config</c>); else the types a
    /// weights file stores; else the config's <c>torch_dtype</c> (vLLM and SGLang serve an fp32 checkpoint in 16 bits); else
    /// bf16 (f16 for llama.cpp, which converts to F16).
    /// </summary>
    public static WeightLayout Layout(ModelArchitecture model, Scenario scenario, out string formatName)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(scenario);
        DataType unquantized = model.StoredType is DataType s && s.BlockBytes == 2 ? s : DataTypes.BF16;
        if (scenario.Weights is WeightFormat format)
        {
            formatName = format.Name;
            return WeightStorage.Layout(model, format, unquantized);
        }

        if (model.Tensors.Tensors.All(t => t.Stored is not null))
        {
            formatName = "as stored";
            return WeightStorage.AsStored(model);
        }

        WeightFormat own = OwnFormat(model, scenario.Engine);
        formatName = own.Name;
        return WeightStorage.Layout(model, own, unquantized);
    }

    private static WeightFormat OwnFormat(ModelArchitecture model, Engine engine)
    {
        if (model.Quantization is QuantizationConfig q)
        {
            switch (q.Method)
            {
                case "fp8":
                case "compressed-tensors":
                case "fbgemm_fp8":
                    return WeightFormats.Fp8;
                case "mxfp4":
                    return WeightFormats.Mxfp4;
                case "gptq":
                    return WeightFormats.GptqInt4;
                case "awq":
                    return WeightFormats.AwqInt4;
                case "bitsandbytes":
                    return WeightFormats.Nf4;
            }
        }

        if (engine == Engine.LlamaCpp)
        {
            return WeightFormats.Fp16;
        }

        if (engine is Engine.Vllm or Engine.Sglang && model.StoredType == DataTypes.F32)
        {
            // vLLM's dtype "auto" (vllm/config _get_and_verify_dtype, mirrored by SGLang's model_config) never serves fp32:
            // it downcasts to fp16, or to bf16 for Gemma 2 and 3, whose activations overflow fp16.
            return model.ModelType is "gemma2" or "gemma3" or "gemma3_text" ? WeightFormats.Bf16 : WeightFormats.Fp16;
        }

        return model.StoredType is DataType stored ? WeightFormats.Dense(stored) : WeightFormats.Bf16;
    }
}
