using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Mvc;

namespace LlmMemory.Web.Api;

/// <summary>
/// Compile-time JSON metadata for the types the OpenAPI document describes (request bodies and problem responses), so
/// the document is generated without reflection under NativeAOT. Responses themselves are written as JsonNode text.
/// </summary>
[JsonSerializable(typeof(JsonElement))]
[JsonSerializable(typeof(ProblemDetails))]
internal sealed partial class ApiJsonContext : JsonSerializerContext;
