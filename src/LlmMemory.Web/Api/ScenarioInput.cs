using System.Text.Json;
using LlmMemory.Catalog;
using LlmMemory.Estimation;
using LlmMemory.Sources;
using LlmMemory.Workloads;
using Microsoft.AspNetCore.Http;

namespace LlmMemory.Web.Api;

/// <summary>A scenario read from a request, with its model resolved: the same rules as a scenario file, minus the file system.</summary>
internal static class ScenarioInput
{
    /// <summary>How errors name the request body (the <c>source</c> of <see cref="ModelFormatException"/>).</summary>
    public const string Source = "request body";

    /// <summary>Reads a scenario object with <see cref="ScenarioReader"/> and resolves its model.</summary>
    /// <exception cref="ApiProblem">The model is a path, a URL or unknown.</exception>
    /// <exception cref="ModelFormatException">A field is unknown, mistyped or out of range (the message names it).</exception>
    public static (Scenario Scenario, ResolvedModel Model) Read(JsonElement scenarioObject)
    {
        Scenario scenario = ScenarioReader.Read(scenarioObject, Source, baseDirectory: null, extraFields: null);
        return (scenario, Resolve(scenario.Model));
    }

    /// <summary>
    /// Resolves catalog names, parameter counts, inline configs and GGUF headers. Anything else a scenario file could name — a path to a
    /// config, checkpoint or GGUF, or a Hub id — is refused: the server never reads its own files or fetches URLs for a client.
    /// </summary>
    public static ResolvedModel Resolve(ModelReference model)
    {
        if (model is ModelReference.Named named && !ModelCatalog.TryFind(named.Text, out _) && !ModelResolver.TryParseCount(named.Text, out _))
        {
            // Suggestions cost an edit distance per catalog name; a megabyte-long "name" would make that seconds of CPU.
            string suggestions = named.Text.Length <= MaxSuggestedLength ? $" (did you mean {string.Join(", ", ModelCatalog.Suggest(named.Text))}?)" : "";
            throw new ApiProblem(StatusCodes.Status400BadRequest, "model",
                $"is \"{Shorten(named.Text)}\", which is not a catalog id or alias or a parameter count{suggestions}. "
                + "The server does not read files or fetch URLs: send the model's config.json inline as {\"model\": {\"config\": {…}}}, "
                + "or drop the file on the page, which reads its header in the browser.");
        }

        return ModelResolver.Resolve(model, baseDirectory: null);
    }

    /// <summary>Longest name offered "did you mean" suggestions: several times any real model id.</summary>
    private const int MaxSuggestedLength = 256;

    private static string Shorten(string text) => text.Length <= 80 ? text : text[..80] + "…";
}
