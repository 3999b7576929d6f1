using LlmMemory.Cli.Rendering;
using LlmMemory.Estimation;
using LlmMemory.Hub;
using LlmMemory.Sources;
using LlmMemory.Workloads;

namespace LlmMemory.Cli.Commands;

/// <summary>Resolves MODEL for the commands: catalog, count or path through the library, a Hugging Face id through the Hub client.</summary>
internal static class ModelSources
{
    public static ResolvedModel Resolve(ModelReference reference, string? baseDirectory, CliOutput io) =>
        ModelResolver.Resolve(reference, baseDirectory, id =>
        {
            using var client = new HubClient(HubSettings.FromEnvironment());
            using var bar = new ProgressBar(io);
            return new HubModelSource(client, bar).Resolve(id);
        });
}
