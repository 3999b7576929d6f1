using System.Text.Json;
using LlmMemory.Workloads;
using Microsoft.AspNetCore.Http;

namespace LlmMemory.Web.Api;

/// <summary>A scenario and the values one of its fields takes along a curve.</summary>
internal sealed record SweepRequest(JsonElement Scenario, string Vary, IReadOnlyList<long> Values)
{
    /// <summary>Points per curve: enough for a smooth chart over 2^0…2^20, few enough to answer in a millisecond.</summary>
    public const int MaxValues = 64;

    /// <summary>
    /// Layers × points per sweep. Every point replays every layer, so this bounds a sweep's work by the model's size: a full
    /// curve of the deepest catalog model (Llama 3.1 405B, 126 layers) fits; a deeper inline config gets fewer points.
    /// </summary>
    public const int MaxLayerPoints = MaxValues * 128;

    public static SweepRequest Read(JsonElement body)
    {
        if (body.ValueKind != JsonValueKind.Object)
        {
            throw Bad("body", "must be an object {\"scenario\": {…}, \"vary\": \"seq\", \"values\": […]}.");
        }

        foreach (JsonProperty property in body.EnumerateObject())
        {
            if (property.Name is not ("scenario" or "vary" or "values"))
            {
                throw Bad(property.Name, "is not a known field (known: scenario, vary, values).");
            }
        }

        if (!body.TryGetProperty("scenario", out JsonElement scenario) || scenario.ValueKind != JsonValueKind.Object)
        {
            throw Bad("scenario", "is required and must be a scenario object.");
        }

        string? vary = body.TryGetProperty("vary", out JsonElement v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;
        if (vary is not ("seq" or "batch"))
        {
            throw Bad("vary", "must be \"seq\" or \"batch\".");
        }

        if (!body.TryGetProperty("values", out JsonElement values) || values.ValueKind != JsonValueKind.Array
            || values.GetArrayLength() is 0 or > MaxValues)
        {
            throw Bad("values", $"must be a list of 1 to {MaxValues} integers.");
        }

        var list = new List<long>();
        foreach (JsonElement value in values.EnumerateArray())
        {
            list.Add(value.ValueKind == JsonValueKind.Number && value.TryGetInt64(out long n)
                ? n
                : throw Bad($"values[{list.Count}]", "must be an integer."));
        }

        return new SweepRequest(scenario, vary, list);
    }

    /// <summary>Refuses a sweep whose points × <paramref name="layers"/> pass <see cref="MaxLayerPoints"/>.</summary>
    public void CheckWork(int layers)
    {
        if ((long)layers * Values.Count > MaxLayerPoints)
        {
            throw Bad("values", $"has {Values.Count} points for a model of {layers:N0} layers; a sweep replays at most {MaxLayerPoints:N0} layers × points, "
                + $"so at most {Math.Max(1, MaxLayerPoints / layers)} points for this model.");
        }
    }

    /// <summary>The scenario with the varied field set to value <paramref name="index"/>, read by the same rules as any scenario.</summary>
    public Scenario ScenarioAt(int index)
    {
        using var stream = new MemoryStream();
        using (var writer = new Utf8JsonWriter(stream))
        {
            writer.WriteStartObject();
            foreach (JsonProperty property in Scenario.EnumerateObject())
            {
                if (property.Name != Vary)
                {
                    property.WriteTo(writer);
                }
            }

            writer.WriteNumber(Vary, Values[index]);
            writer.WriteEndObject();
        }

        using JsonDocument document = JsonDocument.Parse(stream.ToArray());
        try
        {
            return ScenarioReader.Read(document.RootElement, ScenarioInput.Source, baseDirectory: null, extraFields: null);
        }
        catch (ModelFormatException error) when (error.Key == Vary)
        {
            throw Bad($"values[{index}]", ProblemOf(error));
        }
        catch (ModelFormatException error) when (error.Key is not null)
        {
            throw Bad($"scenario.{error.Key}", ProblemOf(error));
        }
    }

    /// <summary>The message without its "source: 'key' " prefix, to be put under another field name.</summary>
    private static string ProblemOf(ModelFormatException error)
    {
        string prefix = $"{error.Input}: '{error.Key}' ";
        return error.Message.StartsWith(prefix, StringComparison.Ordinal) ? error.Message[prefix.Length..] : error.Message;
    }

    private static ApiProblem Bad(string field, string problem) => new(StatusCodes.Status400BadRequest, field, problem);
}
