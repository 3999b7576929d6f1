using System.Net;
using LlmMemory.Cli;
using LlmMemory.Web.Tests.Support;
using Microsoft.AspNetCore.Mvc.Testing;

namespace LlmMemory.Web.Tests.Api;

/// <summary>
/// Flags, a scenario file and an API body are one scenario read by one set of rules: the same bad input gets the same
/// message naming the same field from all three (only where it came from differs: the flag, the file, the request).
/// </summary>
public sealed class OneScenarioPipelineTests(WebApplicationFactory<Program> factory) : IClassFixture<WebApplicationFactory<Program>>
{
    private readonly HttpClient _client = factory.CreateClient();

    public static TheoryData<string[], string, string> BadInputs => new()
    {
        // Checked when the scenario is read.
        { ["--gpus", "3", "--tp", "2"], """ "parallel": {"gpus": 3, "tp": 2} """, "parallel.gpus" },
        { ["--seq", "300000000"], """ "seq": 300000000 """, "seq" },
        { ["--seq", "abc"], """ "seq": "abc" """, "seq" },
        { ["--batch", "1048576", "--seq", "268435456"], """ "batch": 1048576, "seq": 268435456 """, "seq" },
        { ["--weights", "q9_z"], """ "weights": "q9_z" """, "weights" },
        { ["--gpu", "h100"], """ "gpu": "h100" """, "gpu" },
        { ["--mode", "lora", "--lora-r", "0"], """ "mode": "lora", "lora": {"r": 0} """, "lora.r" },
        { ["--engine", "llama.cpp", "--flash-attn", "maybe"], """ "engine": "llama.cpp", "engine_options": {"flash_attn": "maybe"} """, "engine_options.flash_attn" },

        // Refused by the engine that would ignore them.
        { ["--kv-cache-dtype", "fp8"], """ "kv_cache_dtype": "fp8" """, "kv_cache_dtype" },
        { ["--gpus", "2", "--weights", "nf4"], """ "parallel": {"gpus": 2}, "weights": "nf4" """, "parallel.gpus" },
        { ["--mode", "training", "--engine", "llama.cpp"], """ "mode": "training", "engine": "llama.cpp" """, "mode" },
        { ["--mode", "qlora", "--engine", "vllm", "--gpu", "h100-80gb"], """ "mode": "qlora", "engine": "vllm", "gpu": "h100-80gb" """, "mode" },
        { ["--engine", "sglang", "--gpu", "h100-80gb", "--gpus", "2", "--cp", "2"], """ "engine": "sglang", "gpu": "h100-80gb", "parallel": {"gpus": 2, "cp": 2} """, "parallel.cp" },
        { ["--engine", "llama.cpp", "--max-num-seqs", "8"], """ "engine": "llama.cpp", "engine_options": {"max_num_seqs": 8} """, "engine_options.max_num_seqs" },
        { ["--lora-r", "8"], """ "lora": {"r": 8} """, "lora" },
        { ["--mode", "training", "--precision", "mixed-bf16", "--gpu", "t4"], """ "mode": "training", "precision": "mixed-bf16", "gpu": "t4" """, "precision" },
    };

    [Theory]
    [MemberData(nameof(BadInputs))]
    public async Task The_same_bad_input_gets_the_same_message_from_flags_a_file_and_the_api(string[] flags, string fields, string field)
    {
        string json = $$"""{"model": "llama-3.1-8b", {{fields}}}""";

        (int flagCode, string fromFlags) = Cli(["estimate", "llama-3.1-8b", .. flags]);
        string file = Path.Combine(Path.GetTempPath(), $"scenario-{Guid.NewGuid():N}.json");
        await File.WriteAllTextAsync(file, json);
        (int fileCode, string fromFile) = Cli(["estimate", "--scenario", file]);
        File.Delete(file);
        ApiResponse fromApi = await _client.Post("/api/estimate", json);

        Assert.Equal(2, flagCode);
        Assert.Equal(2, fileCode);
        Assert.Equal(HttpStatusCode.BadRequest, fromApi.Status);
        Assert.Equal(field, fromApi.Field);
        string problem = Problem(fromApi.Detail, field);
        Assert.Equal(problem, Problem(fromFlags, field));
        Assert.Equal(problem, Problem(fromFile, field));
        Assert.StartsWith($"error: {flags.First(f => f.StartsWith("--", StringComparison.Ordinal) && fromFlags.Contains(f, StringComparison.Ordinal))}", fromFlags, StringComparison.Ordinal);
        Assert.StartsWith($"error: {file}: ", fromFile, StringComparison.Ordinal);
    }

    /// <summary>What follows the field's name in a message ("'seq' must be an integer, found "abc"." → "must be an integer, …").</summary>
    private static string Problem(string message, string field)
    {
        string quoted = $"'{field}' ";
        int at = message.IndexOf(quoted, StringComparison.Ordinal);
        Assert.True(at >= 0, $"'{message}' does not name {field}");
        return message[(at + quoted.Length)..].Trim();
    }

    private static (int Code, string Error) Cli(string[] args)
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        int code = CliApp.Run(args, stdout, stderr);
        return (code, stderr.ToString().Trim());
    }
}
