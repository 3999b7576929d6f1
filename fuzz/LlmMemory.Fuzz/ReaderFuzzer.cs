using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using CsCheck;

namespace LlmMemory.Fuzz;

/// <summary>What a run saw: counts, the worst time and allocation of one input, and the distinct errors reached.</summary>
public sealed record FuzzReport(string Target, long Inputs, long Values, long FormatErrors, TimeSpan Elapsed, TimeSpan Slowest, long MostAllocated,
    IReadOnlyList<(string Message, long Count)> Errors)
{
    public double InputsPerSecond => Inputs / Math.Max(Elapsed.TotalSeconds, 1e-9);

    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"{Target}: {Inputs:N0} inputs in {Elapsed.TotalSeconds:F1} s ({InputsPerSecond:N0}/s): {Values:N0} values, {FormatErrors:N0} refused " +
        $"({Errors.Count} distinct), 0 other outcomes; slowest input {Slowest.TotalMilliseconds:F1} ms, most allocated {MostAllocated / 1048576.0:F1} MiB");
}

/// <summary>An input that ended in something other than a value or a refusal (<see cref="FuzzTarget.IsRefusal"/>), or took too long or too much memory.</summary>
public sealed class FuzzFailureException : Exception
{
    public FuzzFailureException()
    {
    }

    public FuzzFailureException(string message)
        : base(message)
    {
    }

    public FuzzFailureException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}

/// <summary>
/// Runs mutated inputs through a reader and checks the contract every reader makes (docs/performance.md, "Fuzzing"): each
/// input ends in a value or a refusal (a <see cref="ModelFormatException"/> for the readers), within the target's time limit (<see cref="TimeLimit"/> by default) and <see cref="AllocationLimit"/>.
/// Anything else throws <see cref="FuzzFailureException"/>; CsCheck then shrinks the input and reports the seed that replays it,
/// and every failing input is saved under <c>$TMPDIR/llm-memory-fuzz/</c>.
/// </summary>
public static partial class ReaderFuzzer
{
    /// <summary>
    /// Time one input may take. Real headers read in microseconds to a few milliseconds; a second means a loop driven by a hostile
    /// count (the limit is loose so that a garbage collection on a loaded 2-core CI machine does not fail a run).
    /// </summary>
    public static readonly TimeSpan TimeLimit = TimeSpan.FromSeconds(2);

    /// <summary>
    /// Bytes one input may allocate. The largest seed (DeepSeek-V3's config, 58 MoE layers × 256 experts: about 45,000 tensors)
    /// allocates a few tens of MiB; an allocation sized by a hostile count would be gigabytes.
    /// </summary>
    public const long AllocationLimit = 256L << 20;

    /// <summary>An input still running after this long is a hang: the watchdog saves it and ends the process.</summary>
    private static readonly TimeSpan HangLimit = TimeSpan.FromSeconds(30);

    private static readonly ConcurrentDictionary<int, (long Start, byte[] Input, string Target)> Running = new();

    private static int _saved;

    /// <summary>Runs <paramref name="inputs"/> mutated inputs; throws (via CsCheck, shrunk) on the first contract violation.</summary>
    public static FuzzReport Run(FuzzTarget target, long inputs, int threads = 1, string? seed = null)
    {
        CheckSeeds(target);
        long values = 0, errors = 0, slowestTicks = 0, mostAllocated = 0;
        var messages = new ConcurrentDictionary<string, long>(StringComparer.Ordinal);
        using var watchdog = new Timer(_ => CheckForHangs(), null, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1));
        var clock = Stopwatch.StartNew();
        Mutator.Inputs(target).Sample(input =>
        {
            (bool isValue, string? error, long ticks, long allocated) = Check(target, input);
            if (isValue)
            {
                Interlocked.Increment(ref values);
            }
            else
            {
                Interlocked.Increment(ref errors);
                if (messages.Count < 10_000 || messages.ContainsKey(error!))
                {
                    messages.AddOrUpdate(error!, 1, (_, n) => n + 1);
                }
            }

            Max(ref slowestTicks, ticks);
            Max(ref mostAllocated, allocated);
        }, seed: seed, iter: inputs, threads: threads, print: Describe);
        return new FuzzReport(target.Name, values + errors, values, errors, clock.Elapsed, Stopwatch.GetElapsedTime(0, slowestTicks), mostAllocated,
            messages.OrderByDescending(p => p.Value).ThenBy(p => p.Key, StringComparer.Ordinal).Select(p => (p.Key, p.Value)).ToArray());
    }

    /// <summary>Every seed must read to a value: a broken seed would leave only error paths to explore.</summary>
    public static void CheckSeeds(FuzzTarget target)
    {
        ArgumentNullException.ThrowIfNull(target);
        for (int i = 0; i < target.Seeds.Count; i++)
        {
            try
            {
                target.Read(target.Seeds[i]);
            }
            catch (Exception e) when (target.IsRefusal(e))
            {
                throw new FuzzFailureException($"{target.Name}: seed {i} does not read: {e.Message}", e);
            }
        }
    }

    /// <summary>Reads one input and checks the outcome; returns whether it was a value, the normalized error, time and allocation.</summary>
    public static (bool IsValue, string? Error, long Ticks, long Allocated) Check(FuzzTarget target, byte[] input)
    {
        ArgumentNullException.ThrowIfNull(target);
        int thread = Environment.CurrentManagedThreadId;
        long allocatedBefore = GC.GetAllocatedBytesForCurrentThread();
        long start = Stopwatch.GetTimestamp();
        Running[thread] = (start, input, target.Name);
        string? error = null;
        try
        {
            target.Read(input);
        }
        catch (Exception e) when (target.IsRefusal(e))
        {
            error = Normalize(e.Message);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            throw Failure(target, input, $"ended in {e.GetType().Name}, not a value or a refusal: {e.Message}", e);
        }
        finally
        {
            Running.TryRemove(thread, out _);
        }

        long ticks = Stopwatch.GetTimestamp() - start;
        long allocated = GC.GetAllocatedBytesForCurrentThread() - allocatedBefore;
        if (Stopwatch.GetElapsedTime(0, ticks) > target.Limit)
        {
            throw Failure(target, input, $"took {Stopwatch.GetElapsedTime(0, ticks).TotalMilliseconds:N0} ms, above the limit of {target.Limit.TotalMilliseconds:N0} ms.", null);
        }

        if (allocated > AllocationLimit)
        {
            throw Failure(target, input, $"allocated {allocated:N0} bytes, above the limit of {AllocationLimit:N0}.", null);
        }

        return (error is null, error, ticks, allocated);
    }

    /// <summary>A message with its numbers and quoted names blanked, so errors group by kind ("'#' is #, above the limit of #").</summary>
    private static string Normalize(string message)
    {
        int colon = message.IndexOf(": ", StringComparison.Ordinal);
        string text = colon >= 0 ? message[(colon + 2)..] : message;
        return Numbers().Replace(Quoted().Replace(text, "'…'"), "#");
    }

    private static FuzzFailureException Failure(FuzzTarget target, byte[] input, string problem, Exception? inner)
    {
        string? path = Save(target.Name, input);
        return new FuzzFailureException($"{target.Name}: an input of {input.Length:N0} bytes {problem}{(path is null ? "" : $" Input saved to {path}.")}", inner!);
    }

    private static string? Save(string target, byte[] input)
    {
        if (Interlocked.Increment(ref _saved) > 50)
        {
            return null;
        }

        string folder = Path.Combine(Path.GetTempPath(), "llm-memory-fuzz");
        Directory.CreateDirectory(folder);
        string path = Path.Combine(folder, $"{target}-{Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(input))[..16]}.bin");
        File.WriteAllBytes(path, input);
        return path;
    }

    private static void CheckForHangs()
    {
        foreach ((int _, (long start, byte[] input, string target)) in Running)
        {
            if (Stopwatch.GetElapsedTime(start) > HangLimit)
            {
                string? path = Save(target, input);
                Console.Error.WriteLine($"fuzz: {target}: an input has run for more than {HangLimit.TotalSeconds} s (a hang); saved to {path}.");
                Environment.FailFast($"llm-memory fuzz: {target} hangs on the input saved to {path}.");
            }
        }
    }

    private static string Describe(byte[] input) =>
        $"{input.Length:N0} bytes: {Convert.ToHexString(input.AsSpan(0, Math.Min(48, input.Length)))}{(input.Length > 48 ? "…" : "")}";

    private static void Max(ref long field, long value)
    {
        long seen = Volatile.Read(ref field);
        while (value > seen && Interlocked.CompareExchange(ref field, value, seen) != seen)
        {
            seen = Volatile.Read(ref field);
        }
    }

    [GeneratedRegex(@"\d[\d,._]*")]
    private static partial Regex Numbers();

    [GeneratedRegex(@"'[^']*'|""[^""]*""")]
    private static partial Regex Quoted();
}
