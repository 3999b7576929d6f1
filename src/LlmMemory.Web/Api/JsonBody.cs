using System.Buffers;
using System.Globalization;
using System.Text.Json;
using LlmMemory.Formats;
using Microsoft.AspNetCore.Http;

namespace LlmMemory.Web.Api;

/// <summary>Reads a request body as one JSON document, bounded in size and depth.</summary>
internal static class JsonBody
{
    /// <summary>
    /// Largest accepted body: 1 MiB. A scenario is a few hundred bytes; the largest inline config.json in the catalog is
    /// under 10 KiB, so this leaves two orders of magnitude while keeping a hostile request cheap to refuse.
    /// </summary>
    public const long MaxBytes = 1 << 20;

    /// <summary>Nesting allowed in a body: scenarios nest three levels, configs about four.</summary>
    private const int MaxDepth = 64;

    /// <summary>Reads and parses the body; a <see cref="ApiProblem"/> says why it cannot.</summary>
    public static async Task<JsonDocument> ReadAsync(HttpRequest request)
    {
        // A body without a Content-Type is refused too: a form or a browser's cross-site "simple request" must not pass for JSON.
        if (request.ContentType is not string type)
        {
            throw new ApiProblem(StatusCodes.Status415UnsupportedMediaType, "body", "has no Content-Type; send the scenario as application/json.");
        }

        if (!IsJson(type))
        {
            throw new ApiProblem(StatusCodes.Status415UnsupportedMediaType, "body",
                $"has Content-Type \"{type}\"; send the scenario as application/json.");
        }

        if (request.ContentLength > MaxBytes)
        {
            throw TooLarge();
        }

        byte[] bytes = await ReadBoundedAsync(request);
        if (bytes.Length == 0)
        {
            throw new ApiProblem(StatusCodes.Status400BadRequest, "body", "is empty; send a scenario such as {\"model\": \"llama-3.1-8b\"}.");
        }

        // Invalid UTF-8 or an escaped lone surrogate would otherwise fail later, wherever a string is read (a 500).
        JsonText.Check(bytes, ScenarioInput.Source);
        try
        {
            return JsonDocument.Parse(bytes, new JsonDocumentOptions { MaxDepth = MaxDepth });
        }
        catch (JsonException error)
        {
            string where = error.LineNumber is long line
                ? string.Create(CultureInfo.InvariantCulture, $" at line {line + 1}, byte {error.BytePositionInLine + 1}")
                : "";
            throw new ApiProblem(StatusCodes.Status400BadRequest, "body", $"is not valid JSON{where}.");
        }
    }

    public static ApiProblem TooLarge() =>
        new(StatusCodes.Status413PayloadTooLarge, "body", $"is larger than {MaxBytes:N0} bytes (1 MiB), the most this server reads.");

    private static bool IsJson(string contentType)
    {
        string media = contentType.Split(';', 2)[0].Trim();
        return media.Equals("application/json", StringComparison.OrdinalIgnoreCase)
            || media.Equals("text/json", StringComparison.OrdinalIgnoreCase)
            || media.EndsWith("+json", StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>Copies at most <see cref="MaxBytes"/> bytes; one more byte means the body is too large, whatever Content-Length said.</summary>
    private static async Task<byte[]> ReadBoundedAsync(HttpRequest request)
    {
        using var buffer = new MemoryStream();
        byte[] chunk = ArrayPool<byte>.Shared.Rent(16 * 1024);
        try
        {
            int read;
            while ((read = await request.Body.ReadAsync(chunk, request.HttpContext.RequestAborted)) > 0)
            {
                if (buffer.Length + read > MaxBytes)
                {
                    throw TooLarge();
                }

                buffer.Write(chunk, 0, read);
            }
        }
        catch (BadHttpRequestException error) when (error.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            throw TooLarge();
        }
        catch (BadHttpRequestException error)
        {
            throw new ApiProblem(error.StatusCode, "body", $"could not be read ({error.Message})");
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(chunk);
        }

        return buffer.ToArray();
    }
}
