namespace LlmMemory.Hub;

/// <summary>How long the Hub may take: a whole request (headers and body), and a body between two pieces of data.</summary>
/// <param name="Request">One request from sending to its body's last byte: a header read is at most a few MiB.</param>
/// <param name="Idle">The longest wait for the next bytes, and for a connection; huggingface_hub waits 10 s
/// (constants.py, HF_HUB_DOWNLOAD_TIMEOUT); three times that leaves room for a slow link.</param>
public sealed record HubTimeouts(TimeSpan Request, TimeSpan Idle)
{
    /// <summary>Two minutes per request, 30 s of silence.</summary>
    public static readonly HubTimeouts Default = new(TimeSpan.FromMinutes(2), TimeSpan.FromSeconds(30));
}
