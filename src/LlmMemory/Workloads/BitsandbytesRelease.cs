using System.Globalization;

namespace LlmMemory.Workloads;

/// <summary>Who converts a model's linears to bitsandbytes 4-bit ones (<c>bitsandbytes_converter</c>).</summary>
public enum BitsandbytesConverter
{
    /// <summary>transformers' bitsandbytes integration: every linear but the output head, quantized from the load type.</summary>
    Transformers,

    /// <summary>Lightning's <c>BitsandbytesPrecision</c> (LitGPT): every <c>nn.Linear</c>, the head included, quantized from fp16.</summary>
    Lightning,
}

/// <summary>Whose module code the PyTorch engine runs (<c>model_code</c>).</summary>
public enum ModelCode
{
    /// <summary>transformers' modeling files (and PEFT's LoRA layers).</summary>
    Transformers,

    /// <summary>LitGPT's <c>litgpt/model.py</c> and <c>litgpt/lora.py</c> (lit-gpt's <c>lit_gpt/</c> in 2023).</summary>
    Litgpt,
}

/// <summary>bitsandbytes releases (<c>bitsandbytes_version</c>), where a release changed what a training step holds.</summary>
public static class BitsandbytesRelease
{
    /// <summary>
    /// The first release whose <c>MatMul4Bit.forward</c> keeps only the packed weight for backward
    /// (<c>ctx.tensors = (None, B)</c>); earlier ones kept the input too (<c>ctx.tensors = (A, B)</c>) whenever it or the
    /// weight needed a gradient, though backward never reads it (grad_B is not computed). bitsandbytes PR #1270 "delete
    /// useless buffered activation" (merged 2024-07-16, bitsandbytes/autograd/_functions.py), released in 0.43.2.
    /// </summary>
    public static readonly Version FourBitInputDropped = new(0, 43, 2);

    /// <summary>Reads <c>major.minor.patch</c> (a suffix such as <c>.post1</c> or <c>.dev0</c> after the patch is ignored).</summary>
    public static bool TryParse(string text, out Version version)
    {
        ArgumentNullException.ThrowIfNull(text);
        version = new Version(0, 0, 0);
        string[] parts = text.Trim().Split('.');
        if (parts.Length < 3 || parts.Length > 4)
        {
            return false;
        }

        string patch = new(parts[2].TakeWhile(char.IsAsciiDigit).ToArray());
        if (!int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out int major)
            || !int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out int minor)
            || !int.TryParse(patch, NumberStyles.None, CultureInfo.InvariantCulture, out int build)
            || major > 99 || minor > 999 || build > 999
            || (patch.Length != parts[2].Length && parts.Length == 4))
        {
            return false;
        }

        version = new Version(major, minor, build);
        return true;
    }

    /// <summary>True when the release keeps a 4-bit matmul's input until backward (before <see cref="FourBitInputDropped"/>).</summary>
    public static bool KeepsFourBitInput(string? release) =>
        release is not null && TryParse(release, out Version version) && version < FourBitInputDropped;
}
