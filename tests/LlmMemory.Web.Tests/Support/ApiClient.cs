using System.Net;
using System.Text;
using System.Text.Json.Nodes;

namespace LlmMemory.Web.Tests.Support;

/// <summary>An API answer: status, media type and parsed body.</summary>
internal sealed record ApiResponse(HttpStatusCode Status, string? MediaType, JsonNode? Body)
{
    public string? Field => Body?["field"]?.GetValue<string>();

    public string Detail => Body?["detail"]?.GetValue<string>() ?? "";
}

internal static class ApiClient
{
    public static Task<ApiResponse> Post(this HttpClient client, string path, string json, string mediaType = "application/json") =>
        Send(client, new HttpRequestMessage(HttpMethod.Post, path) { Content = new StringContent(json, Encoding.UTF8, mediaType) });

    public static Task<ApiResponse> Post(this HttpClient client, string path, JsonNode json) => Post(client, path, json.ToJsonString());

    public static Task<ApiResponse> Get(this HttpClient client, string path) => Send(client, new HttpRequestMessage(HttpMethod.Get, path));

    public static async Task<ApiResponse> Send(HttpClient client, HttpRequestMessage request)
    {
        using (request)
        {
            using HttpResponseMessage response = await client.SendAsync(request);
            string text = await response.Content.ReadAsStringAsync();
            return new ApiResponse(response.StatusCode, response.Content.Headers.ContentType?.MediaType, text.Length > 0 ? JsonNode.Parse(text) : null);
        }
    }
}
