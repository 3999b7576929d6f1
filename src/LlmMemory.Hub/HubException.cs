namespace LlmMemory.Hub;

/// <summary>The Hub could not give a file: not found, gated, offline and not cached, unreachable, or the transfer broke off.</summary>
/// <remarks>An <see cref="IOException"/>, so hosts report it as one line like any other unreadable input.</remarks>
public sealed class HubException : IOException
{
    public HubException()
    {
    }

    public HubException(string message)
        : base(message)
    {
    }

    public HubException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
