using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using LlmMemory.Estimation;
using LlmMemory.Estimation.Engines;
using LlmMemory.Reporting;
using LlmMemory.Sources;
using LlmMemory.Workloads;
using LlmMemory.Workloads.StackConfigs;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace LlmMemory.Web.Api;

/// <summary>The JSON API: each handler reads, calls the library once, and renders with the library's JSON (no arithmetic here).</summary>
public static partial class ApiEndpoints
{
    private const string Json = "application/json";

    public static IEndpointRouteBuilder MapLlmMemoryApi(this IEndpointRouteBuilder app)
    {
        ArgumentNullException.ThrowIfNull(app);
        RouteGroupBuilder api = app.MapGroup("/api").WithTags("llm-memory");

        api.MapPost("/estimate", Estimate)
            .WithName("estimate")
            .WithSummary("Estimate the memory of one scenario")
            .WithDescription("The body is a scenario (docs/scenario.md). The response is the same JSON as `llm-memory estimate --json`: "
                + "components with bytes and formula, total_bytes on the most loaded device, and fits/gpu_bytes when a gpu is given.")
            .Accepts<JsonElement>(Json)
            .Produces(StatusCodes.Status200OK, contentType: Json)
            .ProducesProblem(StatusCodes.Status400BadRequest)
            .ProducesProblem(StatusCodes.Status413PayloadTooLarge);

        api.MapPost("/sweep", Sweep)
            .WithName("sweep")
            .WithSummary("Memory of one scenario at several sequence lengths or batch sizes")
            .WithDescription("The body is {\"scenario\": {…}, \"vary\": \"seq\" | \"batch\", \"values\": [1024, 2048, …]} with at most "
                + "64 values, and at most 8,192 values × model layers. Each point is what /api/estimate answers for the scenario with that one field changed. "
                + "Sweeps and fits compute a few at a time (two per core); when all are busy the answer is 503 with Retry-After at once.")
            .Accepts<JsonElement>(Json)
            .Produces(StatusCodes.Status200OK, contentType: Json)
            .ProducesProblem(StatusCodes.Status400BadRequest)
            .ProducesProblem(StatusCodes.Status413PayloadTooLarge)
            .ProducesProblem(StatusCodes.Status503ServiceUnavailable);

        api.MapPost("/fit", Fit)
            .WithName("fit")
            .WithSummary("What fits on the scenario's GPU: largest context, largest batch, fewest GPUs")
            .WithDescription("The body is a scenario with a gpu; ?target_batch=N sets the effective batch training plans for (default 16). "
                + "The response is the same JSON as `llm-memory fit --json`: fits, max_seq, max_batch, min_gpus, gpu_bytes, each with its "
                + "limit and reason, then the weight formats (inference) or the changes that make training fit.")
            .Accepts<JsonElement>(Json)
            .Produces(StatusCodes.Status200OK, contentType: Json)
            .ProducesProblem(StatusCodes.Status400BadRequest)
            .ProducesProblem(StatusCodes.Status413PayloadTooLarge)
            .ProducesProblem(StatusCodes.Status503ServiceUnavailable);

        api.MapPost("/stack-config", ReadStackConfig)
            .WithName("stack-config")
            .WithSummary("Read a fine-tuning stack's config file into scenario fields")
            .WithDescription("The body is {\"name\": \"axolotl.yml\", \"text\": \"…\"}: an Axolotl or torchtune YAML, TrainingArguments/SFTConfig, "
                + "DeepSpeed or accelerate config, read as `llm-memory estimate --config` reads it (the name's .json says JSON, anything else YAML). "
                + "The response lists the scenario fields it sets with the key each came from, the keys that move memory but are not "
                + "modelled yet, and the keys not used.")
            .Accepts<JsonElement>(Json)
            .Produces(StatusCodes.Status200OK, contentType: Json)
            .ProducesProblem(StatusCodes.Status400BadRequest)
            .ProducesProblem(StatusCodes.Status413PayloadTooLarge);

        api.MapGet("/models", () => JsonText(CatalogJson.Models()))
            .WithName("models").WithSummary("The embedded model catalog").Produces(StatusCodes.Status200OK, contentType: Json);
        api.MapGet("/gpus", () => JsonText(CatalogJson.Gpus()))
            .WithName("gpus").WithSummary("The GPU catalog with exact bytes and sources").Produces(StatusCodes.Status200OK, contentType: Json);
        api.MapGet("/dtypes", () => JsonText(CatalogJson.Dtypes()))
            .WithName("dtypes").WithSummary("Numeric and weight formats").Produces(StatusCodes.Status200OK, contentType: Json);
        api.MapGet("/choices", () => JsonText(CatalogJson.ScenarioChoices()))
            .WithName("choices").WithSummary("The accepted spellings of every choice-valued scenario field").Produces(StatusCodes.Status200OK, contentType: Json);
        return app;
    }

    /// <summary>
    /// One estimate is one replay at most (under a second for the largest catalog model, microseconds once kept), so it does
    /// not pass the <see cref="WorkGate"/>: the gate would refuse the cached answers bench/load.sh asks for thousands of times a
    /// second. A client that gives up still stops its replay at the next layer.
    /// </summary>
    private static Task<IResult> Estimate(HttpRequest request) => Guarded(request, body =>
    {
        (Scenario scenario, ResolvedModel model) = ScenarioInput.Read(body.RootElement);
        MemoryEstimate estimate = MemoryEstimator.Estimate(model, scenario, request.HttpContext.RequestAborted);
        return Task.FromResult<IResult>(JsonText(EstimateJson.Estimate(estimate, scenario)));
    });

    private static Task<IResult> Sweep(HttpRequest request) => Guarded(request, async body =>
    {
        SweepRequest sweep = SweepRequest.Read(body.RootElement);
        ResolvedModel model = ScenarioInput.Resolve(sweep.ScenarioAt(0).Model);
        sweep.CheckWork(model.Architecture?.LayerCount ?? 1);
        return JsonText(await Expensive(request, cancellation => SweepPoints(sweep, model, cancellation)));
    });

    private static JsonObject SweepPoints(SweepRequest sweep, ResolvedModel model, CancellationToken cancellation)
    {
        var points = new JsonArray();
        JsonNode? gpuBytes = null;
        for (int i = 0; i < sweep.Values.Count; i++)
        {
            Scenario scenario = sweep.ScenarioAt(i);
            MemoryEstimate estimate = MemoryEstimator.Estimate(model, scenario, cancellation);
            JsonObject json = EstimateJson.Estimate(estimate, scenario);
            gpuBytes ??= json["gpu_bytes"]?.DeepClone();
            var components = new JsonObject();
            foreach (JsonNode? component in json["components"]!.AsArray())
            {
                components[component!["name"]!.GetValue<string>()] = component["bytes"]!.DeepClone();
            }

            points.Add((JsonNode)new JsonObject
            {
                ["value"] = sweep.Values[i],
                ["total_bytes"] = json["total_bytes"]!.DeepClone(),
                ["fits"] = json["fits"]?.DeepClone(),
                ["components"] = components,
            });
        }

        return new JsonObject { ["vary"] = sweep.Vary, ["gpu_bytes"] = gpuBytes, ["points"] = points };
    }

    private static Task<IResult> Fit(HttpRequest request) => Guarded(request, async body =>
    {
        (Scenario scenario, ResolvedModel model) = ScenarioInput.Read(body.RootElement);
        if (scenario.Gpu is null)
        {
            throw new ApiProblem(StatusCodes.Status400BadRequest, "gpu", "is required: fit answers are for one device (h100-80gb, rtx-4090, …).");
        }

        if (model.Architecture?.LayerCount > MaxFitLayers)
        {
            throw new ApiProblem(StatusCodes.Status400BadRequest, "model", $"has {model.Architecture.LayerCount:N0} layers; the server plans fits for models of at most "
                + $"{MaxFitLayers:N0} (a fit replays every layer dozens of times); run `llm-memory fit` for a deeper model.");
        }

        string? target = request.Query["target_batch"];
        int targetBatch = target is null ? Planning.FitPlanner.DefaultTargetBatch
            : int.TryParse(target, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int n) && n >= 1 ? n
            : throw new ApiProblem(StatusCodes.Status400BadRequest, "target_batch", $"is \"{target}\"; expected a whole number of at least 1.");
        return JsonText(FitJson.Plan(await Expensive(request, cancellation => Planning.FitPlanner.Plan(model, scenario, targetBatch, cancellation))));
    });

    private static Task<IResult> ReadStackConfig(HttpRequest request) => Guarded(request, body =>
    {
        JsonElement root = body.RootElement;
        if (root.ValueKind != JsonValueKind.Object)
        {
            throw new ApiProblem(StatusCodes.Status400BadRequest, "body", "must be an object {\"name\": \"…\", \"text\": \"…\"}.");
        }

        foreach (JsonProperty property in root.EnumerateObject())
        {
            if (property.Name is not ("name" or "text"))
            {
                throw new ApiProblem(StatusCodes.Status400BadRequest, property.Name, "is not a field of this request; send name and text.");
            }
        }

        string name = StringField(root, "name");
        string text = StringField(root, "text");
        StackConfig config = StackConfig.Read(name, System.Text.Encoding.UTF8.GetBytes(text));
        return Task.FromResult<IResult>(JsonText(StackConfigJson.Describe(config)));
    });

    private static string StringField(JsonElement root, string field) =>
        root.TryGetProperty(field, out JsonElement value) && value.ValueKind == JsonValueKind.String && value.GetString() is { Length: > 0 } text
            ? text
            : throw new ApiProblem(StatusCodes.Status400BadRequest, field, "is required: a non-empty string.");

    /// <summary>
    /// Layers of a model the server plans a fit for: a fit runs dozens of estimates (bench/ `replays` counts 42 for an 8B LoRA
    /// plan: the boundary searches, their monotonicity checks, the ladder or the training changes), each a replay of every
    /// layer. The sweep's bound (<see cref="SweepRequest.MaxLayerPoints"/>) spread over 64 estimates is 128 layers, so the
    /// deepest catalog model (Llama 3.1 405B, 126 layers) is planned here and a deeper inline config by the CLI.
    /// </summary>
    public const int MaxFitLayers = SweepRequest.MaxLayerPoints / 64;

    /// <summary>Runs <paramref name="work"/> through the server's <see cref="WorkGate"/>, cancelled when the client goes away.</summary>
    private static Task<T> Expensive<T>(HttpRequest request, Func<CancellationToken, T> work) =>
        request.HttpContext.RequestServices.GetRequiredService<WorkGate>().Run(work, request.HttpContext.RequestAborted);

    /// <summary>Reads the body and runs <paramref name="handle"/>; bad input of any kind becomes a problem response, never a 500.</summary>
    private static async Task<IResult> Guarded(HttpRequest request, Func<JsonDocument, Task<IResult>> handle)
    {
        try
        {
            using JsonDocument body = await JsonBody.ReadAsync(request);
            return await handle(body);
        }
        catch (ApiProblem problem)
        {
            if (problem.RetryAfter is int seconds)
            {
                request.HttpContext.Response.Headers.RetryAfter = seconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
            }

            return problem.ToResult();
        }
        catch (OperationCanceledException) when (request.HttpContext.RequestAborted.IsCancellationRequested)
        {
            // The client went away: the library stopped at its next layer boundary, and there is no one to answer.
            return Results.Empty;
        }
        catch (ModelFormatException error)
        {
            return ApiProblem.Render(StatusCodes.Status400BadRequest, FieldOf(error), error.Message);
        }
        catch (NotSupportedException error)
        {
            // The library throws this for what it does not model yet: the request is valid, the answer does not exist yet.
            return ApiProblem.Render(StatusCodes.Status422UnprocessableEntity, null, error.Message);
        }
        catch (Exception error) when (error is FormatException or ArgumentException or OverflowException)
        {
            return ApiProblem.Render(StatusCodes.Status400BadRequest, "body", error.Message);
        }
        catch (Exception error) when (error is not OperationCanceledException)
        {
            LogUnexpected(request.HttpContext.RequestServices.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(ApiEndpoints)), error, request.Path);
            return ApiProblem.Render(StatusCodes.Status500InternalServerError, null, "The server failed on this input; please report it with the request body.");
        }
    }

    /// <summary>The JSON path of the field a library error names: scenario fields as they are, config keys under <c>model.config</c>.</summary>
    private static string FieldOf(ModelFormatException error) => error.Input switch
    {
        ScenarioInput.Source or "scenario" or null => error.Key ?? "body",
        string input when input.StartsWith("model", StringComparison.Ordinal) => error.Key is null ? input : $"{input}.{error.Key}",
        _ => error.Key ?? "body",
    };

    [LoggerMessage(Level = LogLevel.Error, Message = "Unexpected error answering {Path}")]
    private static partial void LogUnexpected(ILogger logger, Exception error, string path);

    /// <summary>Readable JSON: non-ASCII (×, …) as itself, as the CLI prints it. Safe here: the content type is JSON and sniffing is off.</summary>
    internal static readonly JsonSerializerOptions Output = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    private static ContentHttpResult JsonText(JsonNode json) => TypedResults.Content(json.ToJsonString(Output), Json + "; charset=utf-8");
}
