namespace LlmMemory.Models;

/// <summary>How far one block's attention looks back, which sizes its KV cache.</summary>
public enum AttentionKind
{
    /// <summary>Every earlier token.</summary>
    Full,

    /// <summary>Only the last <see cref="ModelArchitecture.SlidingWindow"/> tokens.</summary>
    Sliding,
}
