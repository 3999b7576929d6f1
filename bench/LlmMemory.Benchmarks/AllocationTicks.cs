using System.Diagnostics.Tracing;

namespace LlmMemory.Benchmarks;

/// <summary>
/// The runtime's allocation samples (<c>GCAllocationTick</c>, one per ~100 KB allocated) by type name, in this process:
/// which objects a fresh replay allocates most.
/// </summary>
internal sealed class AllocationTicks : EventListener
{
    private readonly Dictionary<string, long> _bytes = [];

    protected override void OnEventSourceCreated(EventSource source)
    {
        if (source.Name == "Microsoft-Windows-DotNETRuntime")
        {
            EnableEvents(source, EventLevel.Verbose, (EventKeywords)0x1);
        }
    }

    protected override void OnEventWritten(EventWrittenEventArgs e)
    {
        if (e.EventName?.StartsWith("GCAllocationTick", StringComparison.Ordinal) != true || e.Payload is null)
        {
            return;
        }

        string type = e.Payload[e.PayloadNames!.IndexOf("TypeName")] as string ?? "?";
        long amount = Convert.ToInt64(e.Payload[e.PayloadNames!.IndexOf("AllocationAmount64")], System.Globalization.CultureInfo.InvariantCulture);
        lock (_bytes)
        {
            _bytes[type] = _bytes.GetValueOrDefault(type) + amount;
        }
    }

    public void Print(TextWriter output, int top)
    {
        lock (_bytes)
        {
            long total = _bytes.Values.Sum();
            foreach ((string type, long bytes) in _bytes.OrderByDescending(p => p.Value).Take(top))
            {
                output.WriteLine($"  {100.0 * bytes / total,5:F1} % {bytes / 1e6,8:F1} MB  {type}");
            }
        }
    }
}
