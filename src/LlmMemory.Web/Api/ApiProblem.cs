using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.WebUtilities;

namespace LlmMemory.Web.Api;

/// <summary>A request the API refuses: an HTTP status, the field at fault and one sentence on what is wrong with it.</summary>
/// <remarks>Rendered as RFC 9457 <c>application/problem+json</c> with the extension member <c>field</c>.</remarks>
internal sealed class ApiProblem : Exception
{
    public ApiProblem()
    {
    }

    public ApiProblem(string message)
        : base(message)
    {
    }

    public ApiProblem(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    public ApiProblem(int status, string? field, string problem)
        : base(field is null ? problem : $"'{field}' {problem}")
    {
        Status = status;
        Field = field;
    }

    public const string MediaType = "application/problem+json; charset=utf-8";

    public int Status { get; } = StatusCodes.Status400BadRequest;

    /// <summary>The JSON path of the field at fault (<c>seq</c>, <c>lora.r</c>, <c>model.config.hidden_size</c>), or <c>body</c>.</summary>
    public string? Field { get; }

    /// <summary>Seconds the client should wait before asking again (the <c>Retry-After</c> header); null when retrying cannot help.</summary>
    public int? RetryAfter { get; init; }

    public IResult ToResult() => Render(Status, Field, Message);

    public static IResult Render(int status, string? field, string detail) =>
        TypedResults.Content(Json(status, field, detail).ToJsonString(ApiEndpoints.Output), MediaType, statusCode: status);

    /// <summary>The RFC 9457 problem object.</summary>
    public static JsonObject Json(int status, string? field, string detail)
    {
        var json = new JsonObject
        {
            ["type"] = "about:blank",
            ["title"] = ReasonPhrases.GetReasonPhrase(status),
            ["status"] = status,
            ["detail"] = detail,
        };
        if (field is not null)
        {
            json["field"] = field;
        }

        return json;
    }
}
