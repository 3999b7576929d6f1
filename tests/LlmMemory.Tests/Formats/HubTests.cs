using System.Text.Json;
using LlmMemory.Catalog;
using LlmMemory.Estimation;
using LlmMemory.Hub;
using LlmMemory.Sources;
using LlmMemory.Tests.Cli;
using LlmMemory.Tests.Support;

namespace LlmMemory.Tests.Formats;

/// <summary>The Hub path against a local Hub-like server on 127.0.0.1; no test touches the internet.</summary>
[Collection("environment")]
public sealed class HubTests : IDisposable
{
    private readonly FakeHub _hub = new();
    private readonly TempFolder _cache = new();

    public void Dispose()
    {
        _hub.Dispose();
        _cache.Dispose();
    }

    private HubSettings Settings(string? token = null, bool offline = false) => new(_hub.Endpoint, token, offline, _cache.Path);

    private ResolvedModel Resolve(string id, string? token = null, bool offline = false, HubTimeouts? timeouts = null)
    {
        using var client = new HubClient(Settings(token, offline), timeouts: timeouts);
        return new HubModelSource(client).Resolve(id);
    }

    /// <summary>A cached snapshot of <paramref name="repo"/> at main (huggingface_hub's layout), returning its folder.</summary>
    private string CachedSnapshot(string repo)
    {
        string folder = Path.Combine(_cache.Path, "models--" + repo.Replace("/", "--", StringComparison.Ordinal));
        string snapshot = Path.Combine(folder, "snapshots", "0123456789abcdef0123456789abcdef01234567");
        Directory.CreateDirectory(snapshot);
        Directory.CreateDirectory(Path.Combine(folder, "refs"));
        File.WriteAllText(Path.Combine(folder, "refs", "main"), "0123456789abcdef0123456789abcdef01234567");
        return snapshot;
    }

    /// <summary>Serves a catalog model's config.json and a sharded sparse BF16 checkpoint as repo <paramref name="repo"/>.</summary>
    private CatalogModel Serve(string repo, string alias, int shards)
    {
        Assert.True(ModelCatalog.TryFind(alias, out CatalogModel model));
        using var folder = new TempFolder();
        SafetensorsTests.WriteCheckpoint(folder, model, shards);
        _hub.AddFolder(repo, folder.Path);
        return model;
    }

    [Fact]
    public void A_sharded_checkpoint_is_read_with_range_requests_for_its_headers_only()
    {
        CatalogModel model = Serve("meta-llama/Llama-3.1-8B-copy", "llama-3.1-8b", shards: 4);
        ResolvedModel read = Resolve("meta-llama/Llama-3.1-8B-copy");
        // Meta-Llama-3.1-8B: 8,030,261,248 parameters (data/models/llama-3.1-8b.json), 16 GB in BF16.
        Assert.Equal(8_030_261_248, read.ParameterCount);
        Assert.Equal(model.Architecture.ParameterCount, read.ParameterCount);
        Assert.Equal(4, read.Architecture!.WeightsFile!.Files.Count);
        // Header-only: four shards of 4 GB each cost a few 64 KiB ranges, not gigabytes.
        Assert.InRange(_hub.BytesServed, 1, 4 * 1024 * 1024);
        Assert.Contains(_hub.Requests, r => r.StartsWith("cdn/meta-llama/Llama-3.1-8B-copy/model-00001-of-00004.safetensors bytes=0-", StringComparison.Ordinal));
    }

    [Fact]
    public void A_gated_repo_needs_the_token_and_says_so()
    {
        Serve("meta-llama/Gated", "smollm2-135m", shards: 1);
        _hub.Gate("meta-llama/Gated");
        var error = Assert.Throws<HubException>(() => Resolve("meta-llama/Gated"));
        Assert.Contains("HF_TOKEN", error.Message, StringComparison.Ordinal);
        Assert.Contains("refused", Assert.Throws<HubException>(() => Resolve("meta-llama/Gated", token: "hf_wrong")).Message, StringComparison.Ordinal);
        // SmolLM2-135M: 134,515,008 parameters (data/models/smollm2-135m.json).
        Assert.Equal(134_515_008, Resolve("meta-llama/Gated", token: FakeHub.Token).ParameterCount);
    }

    [Fact]
    public void A_missing_repo_revision_or_file_is_a_404_message()
    {
        var error = Assert.Throws<HubException>(() => Resolve("nobody/nothing"));
        Assert.Contains("nobody/nothing", error.Message, StringComparison.Ordinal);
        Assert.Contains("not found", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_interrupted_transfer_is_reported_not_half_read()
    {
        Serve("org/broken", "smollm2-135m", shards: 1);
        _hub.Interrupt("org/broken", "model.safetensors");
        var error = Assert.Throws<HubException>(() => Resolve("org/broken"));
        Assert.Contains("interrupted", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_gguf_repo_is_read_by_quant_tag_and_lists_its_quants_when_ambiguous()
    {
        (byte[] header, long data) = GgufTests.TinyLlama().Build();
        _hub.Add("org/tiny-GGUF", "tiny-Q4_K_M.gguf", header, header.Length + data)
            .Add("org/tiny-GGUF", "tiny-Q8_0.gguf", header, header.Length + data)
            .Add("org/tiny-GGUF", "README.md", "# tiny"u8.ToArray());
        ResolvedModel read = Resolve("org/tiny-GGUF:Q4_K_M");
        Assert.Equal(GgufTests.TinyLlamaParameters, read.ParameterCount);
        Assert.Equal("hub:org/tiny-GGUF:Q4_K_M", read.Origin);
        var ambiguous = Assert.Throws<HubException>(() => Resolve("org/tiny-GGUF"));
        Assert.Contains("Q4_K_M", ambiguous.Message, StringComparison.Ordinal);
        Assert.Contains("Q8_0", ambiguous.Message, StringComparison.Ordinal);
        Assert.Equal(GgufTests.TinyLlamaParameters, Resolve("org/tiny-GGUF:tiny-Q8_0.gguf").ParameterCount);
    }

    [Fact]
    public void The_local_cache_is_used_first_and_alone_when_offline()
    {
        // huggingface_hub layout: refs/main holds the commit, snapshots/<commit>/ the files.
        Assert.True(ModelCatalog.TryFind("qwen2.5-0.5b", out CatalogModel model));
        string repo = Path.Combine(_cache.Path, "models--Qwen--Qwen2.5-0.5B");
        string snapshot = Path.Combine(repo, "snapshots", "0123456789abcdef0123456789abcdef01234567");
        Directory.CreateDirectory(snapshot);
        Directory.CreateDirectory(Path.Combine(repo, "refs"));
        File.WriteAllText(Path.Combine(repo, "refs", "main"), "0123456789abcdef0123456789abcdef01234567");
        File.WriteAllText(Path.Combine(snapshot, "config.json"), model.Config.GetRawText());
        SafetensorsWriter.Write(Path.Combine(snapshot, "model.safetensors"), SafetensorsTests.CheckpointTensors(model.Architecture));

        // Qwen2.5-0.5B: 494,032,768 parameters (data/models/qwen2.5-0.5b.json).
        Assert.Equal(494_032_768, Resolve("Qwen/Qwen2.5-0.5B", offline: true).ParameterCount);
        Assert.Equal(494_032_768, Resolve("Qwen/Qwen2.5-0.5B").ParameterCount);
        Assert.Empty(_hub.Requests);
        var offline = Assert.Throws<HubException>(() => Resolve("Qwen/Qwen2.5-7B", offline: true));
        Assert.Contains("HF_HUB_OFFLINE", offline.Message, StringComparison.Ordinal);
        Assert.Empty(_hub.Requests);
    }

    [Fact]
    public void Without_HF_TOKEN_the_token_saved_by_huggingface_cli_login_is_used()
    {
        // huggingface_hub constants.py: HF_TOKEN_PATH defaults to $HF_HOME/token, the file `huggingface-cli login` writes;
        // the HF_TOKEN variable wins over it.
        var files = new Dictionary<string, string?> { [Path.Combine("/data/hf", "token")] = "hf_saved\n", ["/etc/hf-token"] = "hf_elsewhere" };
        var env = new Dictionary<string, string?> { ["HF_HOME"] = "/data/hf" };
        HubSettings Read() => HubSettings.FromEnvironment(k => env.GetValueOrDefault(k), f => files.GetValueOrDefault(f));

        Assert.Equal("hf_saved", Read().Token);
        env["HF_TOKEN_PATH"] = "/etc/hf-token";
        Assert.Equal("hf_elsewhere", Read().Token);
        env["HF_TOKEN"] = "hf_variable";
        Assert.Equal("hf_variable", Read().Token);
        env.Remove("HF_TOKEN");
        files.Clear();
        Assert.Null(Read().Token);
    }

    [Fact]
    public void Settings_follow_the_huggingface_hub_variables()
    {
        var env = new Dictionary<string, string?> { ["HF_HOME"] = "/data/hf", ["HF_TOKEN"] = "hf_x", ["HF_HUB_OFFLINE"] = "1", ["HF_ENDPOINT"] = "http://mirror.local:8080" };
        HubSettings settings = HubSettings.FromEnvironment(k => env.GetValueOrDefault(k));
        Assert.Equal(Path.Combine("/data/hf", "hub"), settings.CacheDirectory);
        Assert.Equal(("hf_x", true, "http://mirror.local:8080/"), (settings.Token, settings.Offline, settings.Endpoint.ToString()));
        env["HF_HUB_CACHE"] = "/fast/cache";
        Assert.Equal("/fast/cache", HubSettings.FromEnvironment(k => env.GetValueOrDefault(k)).CacheDirectory);
        env["HF_ENDPOINT"] = "ftp://nope";
        Assert.Throws<FormatException>(() => HubSettings.FromEnvironment(k => env.GetValueOrDefault(k)));
    }

    [Fact]
    public void Ids_parse_revision_and_quant()
    {
        Assert.Equal(new HubModelId("org/name", "v1.0", "Q4_K_M"), HubModelId.Parse("org/name@v1.0:Q4_K_M"));
        Assert.Equal(new HubModelId("org/name", "main", null), HubModelId.Parse("org/name"));
        Assert.Throws<FormatException>(() => HubModelId.Parse("../../etc/passwd"));
    }

    [Fact]
    public void The_cli_resolves_hub_ids_through_hf_endpoint_and_catalog_ids_offline()
    {
        Serve("someone/SmolLM2-copy", "smollm2-135m", shards: 2);
        string? endpoint = Environment.GetEnvironmentVariable("HF_ENDPOINT");
        string? cache = Environment.GetEnvironmentVariable("HF_HUB_CACHE");
        try
        {
            Environment.SetEnvironmentVariable("HF_ENDPOINT", _hub.Endpoint.ToString());
            Environment.SetEnvironmentVariable("HF_HUB_CACHE", _cache.Path);
            (int code, string output, string error) = CliTests.Run("params", "someone/SmolLM2-copy", "--json");
            Assert.True(code == 0, error);
            using (JsonDocument json = JsonDocument.Parse(output))
            {
                Assert.Equal(134_515_008, json.RootElement.GetProperty("parameters").GetProperty("total").GetInt64());
            }

            // fit and explain resolve the model as estimate and params do (they used to know only the catalog and paths).
            (code, output, error) = CliTests.Run("fit", "someone/SmolLM2-copy", "--gpu", "rtx-4090", "--json");
            Assert.True(code == 0, error);
            (code, output, error) = CliTests.Run("explain", "someone/SmolLM2-copy");
            Assert.True(code == 0, error);
            Assert.Contains("134,515,008", output, StringComparison.Ordinal);

            (code, _, error) = CliTests.Run("params", "someone/missing");
            Assert.Equal(2, code);
            Assert.Single(error.Trim().Split('\n'));

            // A catalog id never reaches the network: point the endpoint at a closed port.
            Environment.SetEnvironmentVariable("HF_ENDPOINT", "http://127.0.0.1:9/");
            (code, output, error) = CliTests.Run("params", "meta-llama/Llama-3.1-8B", "--json");
            Assert.True(code == 0, error);
            Assert.Contains("8030261248", output, StringComparison.Ordinal);
        }
        finally
        {
            Environment.SetEnvironmentVariable("HF_ENDPOINT", endpoint);
            Environment.SetEnvironmentVariable("HF_HUB_CACHE", cache);
        }
    }

    [Fact]
    public void A_body_that_stalls_mid_transfer_is_an_error_after_the_idle_timeout()
    {
        // The server sends 16 bytes of the header and then nothing, without closing: before, the read waited forever.
        Serve("org/stalls", "smollm2-135m", shards: 1);
        _hub.Send("org/stalls", "model.safetensors", FakeHub.Behaviour.Stall);
        var timeouts = new HubTimeouts(Request: TimeSpan.FromMinutes(10), Idle: TimeSpan.FromMilliseconds(200));

        var error = Assert.Throws<HubException>(() => Resolve("org/stalls", timeouts: timeouts));

        Assert.Equal("org/stalls: the transfer of model.safetensors stalled: no data for 0.2 s.", error.Message);
    }

    [Fact]
    public void A_body_that_trickles_forever_is_an_error_after_the_request_timeout()
    {
        // One byte every 20 ms never trips a generous idle timeout; the request's overall timeout ends it.
        Serve("org/trickles", "smollm2-135m", shards: 1);
        _hub.Send("org/trickles", "model.safetensors", FakeHub.Behaviour.Trickle);
        var timeouts = new HubTimeouts(Request: TimeSpan.FromMilliseconds(500), Idle: TimeSpan.FromMinutes(10));

        var error = Assert.Throws<HubException>(() => Resolve("org/trickles", timeouts: timeouts));

        Assert.Equal("org/trickles: model.safetensors took longer than 0.5 s; the transfer was stopped.", error.Message);
    }

    [Theory]
    [InlineData("/abs/x.gguf", "is an absolute path")]
    [InlineData("../x.gguf", "has an empty, '.' or '..' segment")]
    [InlineData("a/../../x.gguf", "has an empty, '.' or '..' segment")]
    [InlineData("C:x.gguf", "starts with a drive letter")]
    [InlineData("a\\x.gguf", "holds a backslash")]
    [InlineData("x\u0007.gguf", "holds a control character")]
    public void File_names_from_the_hub_are_checked_before_they_touch_the_disk(string name, string problem)
    {
        // No config.json: the source lists the repository's files to find its GGUF, and joins the name onto the cache folder.
        _hub.List("org/evil", name);

        var error = Assert.Throws<HubException>(() => Resolve("org/evil"));

        Assert.StartsWith("org/evil: the file list names the file", error.Message, StringComparison.Ordinal);
        Assert.Contains(problem, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_index_naming_65536_shards_is_refused_before_any_shard_is_fetched()
    {
        Assert.True(ModelCatalog.TryFind("smollm2-135m", out CatalogModel model));
        var map = Enumerable.Range(0, 65_536).ToDictionary(i => $"t{i}", i => $"model-{i:D5}-of-65536.safetensors");
        _hub.Add("org/many", "config.json", System.Text.Encoding.UTF8.GetBytes(model.Config.GetRawText()))
            .Add("org/many", "model.safetensors.index.json", JsonSerializer.SerializeToUtf8Bytes(new { metadata = new { }, weight_map = map }));

        var error = Assert.Throws<HubException>(() => Resolve("org/many"));

        Assert.Equal($"org/many/model.safetensors.index.json names 65,536 shards; at most {HubModelSource.MaxFiles:N0} are fetched from the Hub.", error.Message);
        Assert.DoesNotContain(_hub.Requests, r => r.Contains("-of-65536", StringComparison.Ordinal));
    }

    [Fact]
    public void A_redirect_to_a_file_url_is_refused_in_words()
    {
        Serve("org/redirects", "smollm2-135m", shards: 1);
        _hub.Redirect("org/redirects", "config.json", "file:///etc/passwd");

        var error = Assert.Throws<HubException>(() => Resolve("org/redirects"));

        // Before: "Invalid URI: The hostname could not be parsed."
        Assert.Equal("org/redirects: the Hub redirected config.json to \"file:///etc/passwd\", which is not an http(s) URL; only http and https are followed.", error.Message);
    }

    [Fact]
    public void A_huge_cached_config_is_refused_by_its_size_before_it_is_read()
    {
        // 1.5 GB, sparse: the old reader loaded it whole before refusing it.
        string snapshot = CachedSnapshot("org/huge");
        using (var config = new FileStream(Path.Combine(snapshot, "config.json"), FileMode.Create))
        {
            config.SetLength(1_500_000_000);
        }

        var error = Assert.Throws<ModelFormatException>(() => Resolve("org/huge", offline: true));

        Assert.EndsWith("config.json: is larger than 16,777,216 bytes, the most a config.json may hold.", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_cached_config_that_is_a_device_is_refused_by_its_type()
    {
        if (!SpecialFiles.Available)
        {
            return; // Windows: no /dev/zero.
        }

        string snapshot = CachedSnapshot("org/zero");
        File.CreateSymbolicLink(Path.Combine(snapshot, "config.json"), "/dev/zero");

        var error = Assert.Throws<ModelFormatException>(() => Resolve("org/zero", offline: true));

        Assert.Contains("config.json: is a character device, not a regular file", error.Message, StringComparison.Ordinal);
    }
}
