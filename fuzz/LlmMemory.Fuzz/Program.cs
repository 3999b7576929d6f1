using System.Globalization;
using LlmMemory.Fuzz;

// dotnet run -c Release --project fuzz/LlmMemory.Fuzz -- [--target config|…|all] [--inputs 1000000] [--threads 2] [--seed S]
// Exit code 0 when every input ended in a value or a refusal (ModelFormatException; a 4xx answer; HubException) within the limits; 1 with the shrunk input otherwise.
string target = Option("--target") ?? "all";
long inputs = long.Parse(Option("--inputs") ?? "1000000", CultureInfo.InvariantCulture);
int threads = int.Parse(Option("--threads") ?? Environment.ProcessorCount.ToString(CultureInfo.InvariantCulture), CultureInfo.InvariantCulture);
string? seed = Option("--seed");
int failures = 0;
foreach (FuzzTarget t in Targets.All.Where(t => target == "all" || t.Name == target))
{
    try
    {
        FuzzReport report = ReaderFuzzer.Run(t, inputs, threads, seed);
        Console.WriteLine(report);
        foreach ((string message, long count) in report.Errors.Take(12))
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"    {count,10:N0}  {message}"));
        }
    }
    catch (Exception e) when (e is not OutOfMemoryException)
    {
        failures++;
        Console.WriteLine($"{t.Name}: FAILED");
        for (Exception? inner = e; inner is not null; inner = inner.InnerException)
        {
            Console.WriteLine(inner is FuzzFailureException or CsCheck.CsCheckException ? inner.Message : $"{inner.GetType().Name}: {inner.Message}\n{inner.StackTrace}");
        }
    }
}

return failures == 0 ? 0 : 1;

string? Option(string name)
{
    int i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
}
