using LlmMemory.Estimation;
using LlmMemory.Workloads;

namespace LlmMemory.Cli.Rendering;

/// <summary>The breakdown table: component, size in binary units, formula with its numbers.</summary>
internal static class EstimateTable
{
    public static void Write(CliOutput io, MemoryEstimate estimate, Scenario scenario)
    {
        var rows = estimate.Components
            .Select(c => new[] { c.Residence == Residence.Host ? c.Name + " (host)" : c.Name, c.Bytes.ToString(), c.Formula })
            .ToList();
        rows.Add(["total", estimate.DeviceTotal.ToString(), estimate.DeviceCount > 1 ? $"per device ({estimate.Device}); {estimate.DeviceCount} devices: {estimate.AllDevicesTotal}" : "device memory at the peak"]);
        string mode = Names.Of(scenario.Mode);
        Output.Table(io, ["Component", "Size", "Formula"], rows, rightAligned: [1],
            caption: $"{estimate.Model.Name}: {mode}, {Names.Of(scenario.Engine)}; peak at {estimate.PeakPhase}. Sizes in binary units (GiB = 2^30 bytes).");
        if (estimate.HostTotal.Bytes > 0)
        {
            io.WriteWrapped($"Host memory: {estimate.HostTotal}");
        }

        if (estimate.Gpu is { } gpu && gpu.Budget is ByteSize budget)
        {
            io.WriteWrapped(estimate.Fits == true ? $"Fits {gpu.Name}: {estimate.DeviceTotal} of {budget} usable."
                : estimate.DeviceTotal <= budget ? $"Does not fit {gpu.Name}: {estimate.DeviceTotal} of {budget} usable, but the engine refuses to start (see the note)."
                : $"Does not fit {gpu.Name}: {estimate.DeviceTotal} needed, {budget} usable.");
        }

        foreach (MemoryComponent comparison in estimate.Comparisons)
        {
            io.WriteWrapped($"Compare: {comparison.Name} = {comparison.Bytes} ({comparison.Formula})");
        }

        foreach (EstimateFact fact in estimate.Facts)
        {
            io.WriteWrapped($"{fact.Description}: {Output.Count(fact.Value)}");
        }

        foreach (string note in estimate.Notes)
        {
            io.WriteWrapped($"Note: {note}");
        }
    }
}
