using Microsoft.AspNetCore.Http;

namespace LlmMemory.Web.Api;

/// <summary>
/// Bounds how many expensive requests compute at once: sweeps and fits, each of which replays the model many times. A request that finds every slot
/// taken is refused at once with 503 and <c>Retry-After</c>, never queued: a client that waits in a queue gives up, and
/// the work it leaves behind is what kept the server busy for minutes (issue 19). Cheap requests never pass the gate.
/// </summary>
/// <param name="slots">How many expensive requests may compute at once.</param>
internal sealed class WorkGate(int slots)
{
    /// <summary>
    /// Two slots per core. Each expensive request is one CPU-bound thread, so more at once than there are cores only stretches
    /// every answer (and holds more replays in memory) without finishing any sooner; but the page asks for two sweeps and a
    /// fit at once, and on a 2-core machine one page must not be refused its own third request.
    /// </summary>
    public static int DefaultSlots => 2 * Environment.ProcessorCount;

    /// <summary>Seconds a refused client is told to wait: a fresh fit or sweep takes about a second (docs/performance.md).</summary>
    public const int RetryAfterSeconds = 1;

    private int _taken;

    public int Slots { get; } = slots;

    /// <summary>Takes a slot if one is free; disposing the slot frees it. Null when the gate is full.</summary>
    public IDisposable? TryEnter()
    {
        if (Interlocked.Increment(ref _taken) <= Slots)
        {
            return new Slot(this);
        }

        Interlocked.Decrement(ref _taken);
        return null;
    }

    /// <summary>
    /// Runs <paramref name="work"/> in a slot on a thread of its own, so the thread pool stays free for cheap requests and
    /// for Kestrel's I/O; <paramref name="cancellation"/> (the request's) reaches the library's checks.
    /// </summary>
    /// <exception cref="ApiProblem">503: every slot is taken.</exception>
    public async Task<T> Run<T>(Func<CancellationToken, T> work, CancellationToken cancellation)
    {
        ArgumentNullException.ThrowIfNull(work);
        using IDisposable slot = TryEnter() ?? throw new ApiProblem(StatusCodes.Status503ServiceUnavailable, null,
            $"The server is computing {Slots} sweeps or fits, as many as it runs at once; retry in {RetryAfterSeconds} s.")
        {
            RetryAfter = RetryAfterSeconds,
        };
        return await Task.Factory.StartNew(() => work(cancellation), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
    }

    private sealed class Slot(WorkGate gate) : IDisposable
    {
        private int _released;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _released, 1) == 0)
            {
                Interlocked.Decrement(ref gate._taken);
            }
        }
    }
}
