using System.Net;
using System.Net.Http.Headers;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using LlmMemory.Hub;
using LlmMemory.Models;

namespace LlmMemory.Fuzz;

/// <summary>
/// The Hub client against a hostile Hub: each input describes what a fake Hub answers for each URL (status, body, lengths,
/// ranges, redirects), and <see cref="HubModelSource.Resolve"/> reads a model from it as <c>llm-memory params org/name</c>
/// does. The contract: a value, or a <see cref="HubException"/> / <see cref="FormatException"/> with one sentence.
/// </summary>
/// <remarks>
/// An input is <c>{"model": ID, "responses": {PATH: ANSWER, …}}</c>. An ANSWER has a <c>status</c> (default 200) and one body:
/// <c>json</c> (any JSON, sent as its text), <c>safetensors</c> (a header object, sent with its 8-byte length prefix and
/// followed by <c>data</c> zero bytes) or <c>gguf</c> (base64); it may override <c>length</c> (Content-Length), <c>total</c>
/// (Content-Range's length), answer Range requests or not (<c>ranges</c>), send no length (<c>chunked</c>) or redirect
/// (<c>location</c>). Paths not in the map are 404. Mutating the description mutates the server's behaviour and its files.
/// </remarks>
public static class HubTarget
{
    private static readonly string EmptyCache = Directory.CreateTempSubdirectory("llm-memory-fuzz-hub-").FullName;

    public static FuzzTarget Target { get; } = new("hub", Seeds().Select(s => Encoding.UTF8.GetBytes(s.ToJsonString())).ToArray(), _ => Range.All,
        Resolve, error => error is HubException or FormatException);

    private static void Resolve(byte[] input)
    {
        using JsonDocument? description = Parse(input);
        JsonElement root = description?.RootElement ?? default;
        bool described = root.ValueKind == JsonValueKind.Object;
        string model = described ? FakeHub.Text(root, "model") ?? "org/tiny" : "org/tiny";
        JsonElement responses = described && root.TryGetProperty("responses", out JsonElement r) && r.ValueKind == JsonValueKind.Object ? r : default;
        // A description that mutation broke is still a server: one that answers every URL with those bytes.
        using var http = new HttpClient(new FakeHub(responses, described ? null : input), disposeHandler: true);
        using var client = new HubClient(new HubSettings(new Uri("https://hub.fuzz/"), Token: null, Offline: false, EmptyCache), http);
        new HubModelSource(client).Resolve(model);
    }

    private static JsonDocument? Parse(byte[] input)
    {
        try
        {
            return JsonDocument.Parse(input);
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>
    /// Answers from the description: the response for the request's path, its Range honoured unless told otherwise; or, given
    /// <paramref name="garbage"/>, those bytes as every file and every answer.
    /// </summary>
    private sealed class FakeHub(JsonElement responses, byte[]? garbage) : HttpMessageHandler
    {
        /// <summary>An answer with no options: status 200, ranges honoured, lengths true.</summary>
        private static readonly JsonElement Plain = JsonDocument.Parse("{}").RootElement.Clone();

        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken) =>
            Task.FromResult(Send(request, cancellationToken));

        protected override HttpResponseMessage Send(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            try
            {
                return Answer(request);
            }
            catch (InvalidOperationException)
            {
                // The description holds text JSON cannot read as a string (a lone surrogate in a key): a server with no such file.
                return NotFound();
            }
        }

        private static HttpResponseMessage NotFound() => new(HttpStatusCode.NotFound) { Content = new ByteArrayContent([]) };

        private HttpResponseMessage Answer(HttpRequestMessage request)
        {
            string path = Uri.UnescapeDataString(request.RequestUri!.AbsolutePath);
            JsonElement answer = Plain;
            if (garbage is null && (responses.ValueKind != JsonValueKind.Object || !responses.TryGetProperty(path, out answer) || answer.ValueKind != JsonValueKind.Object))
            {
                return NotFound();
            }

            int status = Int(answer, "status") is long s && s is >= 100 and <= 599 ? (int)s : 200;
            byte[] body = Body(answer);
            long total = body.Length + Math.Max(0, Math.Min(Int(answer, "data") ?? 0, 1L << 40));
            var response = new HttpResponseMessage((HttpStatusCode)status);
            if (Text(answer, "location") is string location)
            {
                response.Headers.TryAddWithoutValidation("Location", location);
            }

            RangeItemHeaderValue? range = request.Headers.Range?.Ranges.FirstOrDefault();
            bool ranges = !(answer.TryGetProperty("ranges", out JsonElement r) && r.ValueKind == JsonValueKind.False);
            byte[] sent = body;
            if (range is not null && ranges && status is 200 or 206)
            {
                long from = range.From ?? 0, to = Math.Min(range.To ?? total - 1, total - 1);
                if (from >= total)
                {
                    response.StatusCode = HttpStatusCode.RequestedRangeNotSatisfiable;
                    sent = [];
                    response.Content = new ByteArrayContent(sent);
                    response.Content.Headers.ContentRange = new ContentRangeHeaderValue(Int(answer, "total") ?? total);
                    return response;
                }

                response.StatusCode = HttpStatusCode.PartialContent;
                sent = Slice(body, from, (int)Math.Min(to - from + 1, 4 << 20));
                response.Content = new ByteArrayContent(sent);
                long declared = Int(answer, "total") ?? total;
                response.Content.Headers.ContentRange = declared >= 0 && from <= to ? new ContentRangeHeaderValue(from, to, declared) : new ContentRangeHeaderValue(Math.Max(declared, 0));
            }
            else
            {
                bool chunked = answer.TryGetProperty("chunked", out JsonElement c) && c.ValueKind == JsonValueKind.True;
                response.Content = chunked ? new StreamContent(new MemoryStream(sent)) : new ByteArrayContent(sent);
                if (!chunked)
                {
                    // The whole file's length, data section included; the zeros are not sent (a reader stops after the header).
                    response.Content.Headers.ContentLength = total;
                }
            }

            if (Int(answer, "length") is long length && length >= 0)
            {
                response.Content.Headers.ContentLength = length;
            }

            return response;
        }

        /// <summary>Bytes [from, from + count) of the body followed by its zero data section.</summary>
        private static byte[] Slice(byte[] body, long from, int count)
        {
            byte[] slice = new byte[Math.Max(count, 0)];
            if (from < body.Length)
            {
                body.AsSpan((int)from, (int)Math.Min(body.Length - from, slice.Length)).CopyTo(slice);
            }

            return slice;
        }

        private byte[] Body(JsonElement answer)
        {
            if (garbage is not null)
            {
                return garbage;
            }

            if (answer.TryGetProperty("json", out JsonElement json))
            {
                return JsonMarshal.GetRawUtf8Value(json).ToArray();
            }

            if (answer.TryGetProperty("safetensors", out JsonElement header))
            {
                ReadOnlySpan<byte> text = JsonMarshal.GetRawUtf8Value(header);
                return [.. BitConverter.GetBytes((ulong)text.Length + (ulong)(Int(answer, "prefix") ?? 0)), .. text];
            }

            if (Text(answer, "gguf") is string gguf)
            {
                try
                {
                    return Convert.FromBase64String(gguf);
                }
                catch (FormatException)
                {
                    return Encoding.UTF8.GetBytes(gguf);
                }
            }

            return [];
        }

        private static long? Int(JsonElement e, string name) =>
            e.TryGetProperty(name, out JsonElement v) && v.ValueKind == JsonValueKind.Number && v.TryGetInt64(out long n) ? n : null;

        /// <summary>A string member; null when absent, not a string, or not UTF-8 (the description, not the server, is broken then).</summary>
        public static string? Text(JsonElement e, string name)
        {
            try
            {
                return e.TryGetProperty(name, out JsonElement v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;
            }
            catch (InvalidOperationException)
            {
                return null;
            }
        }
    }

    /// <summary>
    /// A Hub serving the tiny Llama: one safetensors file; two shards with an index; a redirect to a CDN path; a GGUF repository
    /// picked by quantization; a server that ignores Range requests.
    /// </summary>
    private static IEnumerable<JsonObject> Seeds()
    {
        JsonNode config = JsonNode.Parse(TinySeeds.ConfigJson)!;
        TensorSpec[] tensors = [.. TinySeeds.Architecture.Tensors.Tensors];
        const string repo = "/org/tiny/resolve/main/";
        static JsonObject List(params string[] files) => new()
        {
            ["json"] = new JsonObject { ["siblings"] = new JsonArray([.. files.Select(f => (JsonNode)new JsonObject { ["rfilename"] = f })]) },
        };

        yield return Seed("org/tiny", new()
        {
            [repo + "config.json"] = new JsonObject { ["json"] = config.DeepClone() },
            [repo + "model.safetensors"] = Shard(tensors),
        });

        TensorSpec[] first = tensors[..(tensors.Length / 2)], second = tensors[(tensors.Length / 2)..];
        var weightMap = new JsonObject();
        foreach (TensorSpec t in first)
        {
            weightMap[t.Name] = "model-00001-of-00002.safetensors";
        }

        foreach (TensorSpec t in second)
        {
            weightMap[t.Name] = "model-00002-of-00002.safetensors";
        }

        yield return Seed("org/tiny", new()
        {
            [repo + "config.json"] = new JsonObject { ["status"] = 302, ["location"] = "https://cdn.fuzz/blobs/config" },
            ["/blobs/config"] = new JsonObject { ["json"] = config.DeepClone() },
            [repo + "model.safetensors.index.json"] = new JsonObject
            {
                ["json"] = new JsonObject { ["metadata"] = new JsonObject { ["total_size"] = tensors.Sum(t => t.Elements * 2) }, ["weight_map"] = weightMap },
            },
            [repo + "model-00001-of-00002.safetensors"] = Shard(first),
            [repo + "model-00002-of-00002.safetensors"] = Shard(second),
        });

        yield return Seed("org/tiny@v1", new()
        {
            ["/org/tiny/resolve/v1/config.json"] = new JsonObject { ["json"] = config.DeepClone(), ["chunked"] = true },
            ["/org/tiny/resolve/v1/model.safetensors"] = Shard(tensors, ranges: false),
        });

        yield return Seed("org/tiny-gguf:Q4_K_M", new()
        {
            ["/api/models/org/tiny-gguf/revision/main"] = List("README.md", "tiny-Q4_K_M.gguf", "tiny-Q8_0-00001-of-00002.gguf"),
            ["/org/tiny-gguf/resolve/main/tiny-Q4_K_M.gguf"] = new JsonObject
            {
                ["gguf"] = Convert.ToBase64String(TinySeeds.Gguf[0]), ["data"] = TinySeeds.GgufDataBytes,
            },
        });

        static JsonObject Shard(IReadOnlyList<TensorSpec> part, bool ranges = true)
        {
            var header = new JsonObject { ["__metadata__"] = new JsonObject { ["format"] = "pt" } };
            long offset = 0;
            foreach (TensorSpec t in part)
            {
                header[t.Name] = new JsonObject
                {
                    ["dtype"] = "BF16",
                    ["shape"] = new JsonArray([.. t.Shape.Select(d => (JsonNode)d)]),
                    ["data_offsets"] = new JsonArray(offset, offset + (t.Elements * 2)),
                };
                offset += t.Elements * 2;
            }

            var answer = new JsonObject { ["status"] = 200, ["safetensors"] = header, ["data"] = offset };
            if (!ranges)
            {
                answer["ranges"] = false;
            }

            return answer;
        }

        static JsonObject Seed(string model, JsonObject responses) => new() { ["model"] = model, ["responses"] = responses };
    }
}
