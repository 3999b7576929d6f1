using LlmMemory.Catalog;
using LlmMemory.Hub;
using LlmMemory.Tests.Cli;
using LlmMemory.Tests.Support;

namespace LlmMemory.Tests;

/// <summary>
/// Every local read goes through <see cref="LocalFile"/>: a device or pipe given where a file belongs is one line, found by
/// its type before it is opened. (Before: /dev/zero reported 0 bytes, was read until 4.2 GB and crashed with exit 134; a FIFO
/// named x.json blocked forever.)
/// </summary>
public sealed class LocalFileTests : IDisposable
{
    private readonly TempFolder _folder = new();

    public void Dispose() => _folder.Dispose();

    private static void OneLineExit2((int Code, string Out, string Error) run, string expected)
    {
        Assert.True(run.Code == 2, run.Error);
        Assert.Single(run.Error.Trim().Split('\n'));
        Assert.Contains(expected, run.Error, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", run.Error, StringComparison.Ordinal);
    }

    [Fact]
    public void A_device_is_refused_by_its_type_not_read_until_memory_runs_out()
    {
        if (!SpecialFiles.Available)
        {
            return; // Windows: no /dev/zero, FIFOs or unprivileged symlinks.
        }

        string zero = SpecialFiles.Zero(_folder, "config.json");
        var error = Assert.Throws<ModelFormatException>(() => LocalFile.ReadAllBytes(zero, 1 << 20, "a config.json"));
        Assert.Equal($"{zero}: is a character device, not a regular file; give the path of a file.", error.Message);
        Assert.Throws<ModelFormatException>(() => LocalFile.OpenRead("/dev/zero").Dispose());
    }

    [Fact]
    public void A_fifo_is_refused_without_being_opened()
    {
        if (!SpecialFiles.Available)
        {
            return; // Windows: no /dev/zero, FIFOs or unprivileged symlinks.
        }

        using Fifo fifo = SpecialFiles.Fifo(_folder, "x.json");
        var error = Assert.Throws<ModelFormatException>(() => LocalFile.ReadAllBytes(fifo.Path, 1 << 20, "a config.json"));
        Assert.Contains("is a FIFO (named pipe), not a regular file", error.Message, StringComparison.Ordinal);
        Assert.False(fifo.Opened);
    }

    [Fact]
    public void A_file_over_the_cap_is_refused_and_one_at_the_cap_is_read()
    {
        string path = _folder.File("big.json");
        File.WriteAllBytes(path, new byte[101]);
        Assert.Contains("is larger than 100 bytes, the most a test file may hold.",
            Assert.Throws<ModelFormatException>(() => LocalFile.ReadAllBytes(path, 100, "a test file")).Message, StringComparison.Ordinal);
        Assert.Equal(101, LocalFile.ReadAllBytes(path, 101, "a test file").Length);
        Assert.Contains("does not exist", Assert.Throws<ModelFormatException>(() => LocalFile.ReadAllBytes(_folder.File("none"), 1, "x")).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Config_scenario_and_case_files_that_are_devices_or_pipes_are_one_line_and_exit_2()
    {
        if (!SpecialFiles.Available)
        {
            return; // Windows: no /dev/zero, FIFOs or unprivileged symlinks.
        }

        OneLineExit2(CliTests.Run("params", SpecialFiles.Zero(_folder, "config.json")), "is a character device");
        OneLineExit2(CliTests.Run("params", SpecialFiles.Zero(_folder, "m.gguf")), "is a character device");
        OneLineExit2(CliTests.Run("params", SpecialFiles.Zero(_folder, "m.safetensors")), "is a character device");
        OneLineExit2(CliTests.Run("estimate", "llama-3.1-8b", "--scenario", SpecialFiles.Zero(_folder, "scenario.json")), "is a character device");
        OneLineExit2(CliTests.Run("validate", SpecialFiles.Zero(_folder, "cases.jsonl")), "is a character device");
        using Fifo fifo = SpecialFiles.Fifo(_folder, "x.json");
        OneLineExit2(CliTests.Run("params", fifo.Path), "is a FIFO");
        OneLineExit2(CliTests.Run("estimate", "llama-3.1-8b", "--scenario", fifo.Path), "is a FIFO");
        Assert.False(fifo.Opened);
    }

    [Fact]
    public void A_safetensors_index_that_is_a_device_is_one_line_and_exit_2()
    {
        if (!SpecialFiles.Available)
        {
            return; // Windows: no /dev/zero, FIFOs or unprivileged symlinks.
        }

        Assert.True(ModelCatalog.TryFind("smollm2-135m", out CatalogModel model));
        File.WriteAllText(_folder.File("config.json"), model.Config.GetRawText());
        SpecialFiles.Zero(_folder, "model.safetensors.index.json");
        OneLineExit2(CliTests.Run("params", _folder.Path), "model.safetensors.index.json: is a character device");
    }

    [Fact]
    public void A_token_file_that_is_a_device_gives_no_token()
    {
        if (!SpecialFiles.Available)
        {
            return; // Windows: no /dev/zero, FIFOs or unprivileged symlinks.
        }

        var env = new Dictionary<string, string?> { ["HF_HOME"] = _folder.Path, ["HF_TOKEN_PATH"] = "/dev/zero" };
        Assert.Null(HubSettings.FromEnvironment(k => env.GetValueOrDefault(k)).Token);
        File.WriteAllText(_folder.File("token"), "hf_saved\n");
        env.Remove("HF_TOKEN_PATH");
        Assert.Equal("hf_saved", HubSettings.FromEnvironment(k => env.GetValueOrDefault(k)).Token);
    }
}
