using System.Net;
using System.Net.Sockets;
using System.Text;
using LlmMemory.Cli.Rendering;
using LlmMemory.Tests.Support;

namespace LlmMemory.Tests.Cli;

/// <summary>
/// Text a file or flag cannot turn into what the CLI prints: strings that are not Unicode, control characters, and a busy
/// port. Each is one line and exit 2 (before: exit 134 with a stack trace, raw ESC/BEL on the terminal, a 34-line trace).
/// </summary>
public sealed class HostileTextTests : IDisposable
{
    private readonly TempFolder _folder = new();

    public void Dispose() => _folder.Dispose();

    private string Write(string name, byte[] bytes)
    {
        string path = _folder.File(name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    private static string OneLineExit2((int Code, string Out, string Error) run)
    {
        Assert.True(run.Code == 2, run.Error);
        Assert.Single(run.Error.Trim().Split('\n'));
        Assert.DoesNotContain("   at ", run.Error, StringComparison.Ordinal);
        return run.Error.Trim();
    }

    [Fact]
    public void A_lone_surrogate_in_a_scenario_string_is_one_line_naming_the_field()
    {
        // "\ud800" is valid JSON but no .NET string; reading it threw InvalidOperationException (exit 134).
        string scenario = Write("s.json", """{"model": "llama-3.1-8b", "engine": "\ud800"}"""u8.ToArray());
        Assert.Equal($"error: {scenario}: 'engine' holds an escaped lone surrogate (such as \\ud800), which is not valid Unicode.",
            OneLineExit2(CliTests.Run("estimate", "llama-3.1-8b", "--scenario", scenario)));
    }

    [Fact]
    public void Invalid_utf8_in_a_scenario_string_is_one_line_naming_the_field()
    {
        // 0xFF 0xFE never occur in UTF-8; they used to become U+FFFD and reach the engine lookup as "��".
        string scenario = Write("s.json", [.. """{"model": "llama-3.1-8b", "engine": """u8, (byte)'"', 0xFF, 0xFE, (byte)'"', (byte)'}']);
        Assert.Equal($"error: {scenario}: 'engine' is not valid UTF-8.", OneLineExit2(CliTests.Run("estimate", "llama-3.1-8b", "--scenario", scenario)));
    }

    [Fact]
    public void A_lone_surrogate_in_a_config_names_the_key()
    {
        string config = Write("config.json", """{"model_type": "llama\udc00", "hidden_size": 64, "num_hidden_layers": 2}"""u8.ToArray());
        Assert.Contains("'model_type' holds an escaped lone surrogate", OneLineExit2(CliTests.Run("params", config)), StringComparison.Ordinal);
    }

    [Fact]
    public void Escape_and_bell_in_a_model_type_reach_the_terminal_escaped()
    {
        // ESC ] 0 ; … BEL would retitle the terminal; ESC [ 2 J would clear it.
        string config = Write("config.json", """{"model_type": "\u001b]0;pwned\u0007\u001b[2J", "hidden_size": 64}"""u8.ToArray());
        string error = OneLineExit2(CliTests.Run("params", config));
        Assert.DoesNotContain('\u001b', error);
        Assert.DoesNotContain('\u0007', error);
        Assert.Contains("\\x1b]0;pwned\\x07\\x1b[2J", error, StringComparison.Ordinal);
    }

    [Fact]
    public void Escape_and_bell_in_a_gguf_architecture_and_tensor_name_reach_the_terminal_escaped()
    {
        string architecture = _folder.File("arch.gguf");
        new GgufWriter().String("general.architecture", "llama\u001b]0;pwned\u0007").UInt32("general.file_type", 1).Write(architecture);
        string error = OneLineExit2(CliTests.Run("params", architecture));
        Assert.DoesNotContain('\u001b', error);
        Assert.Contains("llama\\x1b]0;pwned\\x07", error, StringComparison.Ordinal);

        // Five dimensions, one more than GGML_MAX_DIMS, make the reader name the tensor in its error.
        string tensor = _folder.File("tensor.gguf");
        new GgufWriter().String("general.architecture", "llama").Tensor("blk.0.\u001b[2J\u0007.weight", [1, 1, 1, 1, 1], GgufWriter.F32).Write(tensor);
        error = OneLineExit2(CliTests.Run("params", tensor));
        Assert.DoesNotContain('\u001b', error);
        Assert.DoesNotContain('\u0007', error);
        Assert.Contains("'blk.0.\\x1b[2J\\x07.weight'", error, StringComparison.Ordinal);
    }

    [Fact]
    public void The_terminal_writer_escapes_controls_but_keeps_line_breaks_and_tabs()
    {
        Assert.Equal("a\\x1bb\\x07c\\x7fd\\x9be\tf\r\n", TerminalWriter.Escape("a\u001bb\u0007c\u007fd\u009be\tf\r\n"));
        using var inner = new StringWriter();
        using var writer = new TerminalWriter(inner);
        writer.Write('\u001b');
        writer.Write("x\u0007".ToCharArray(), 0, 2);
        writer.WriteLine("y\u0000");
        Assert.Equal("\\x1bx\\x07y\\x00" + Environment.NewLine, inner.ToString());
    }

    [Fact]
    public void One_bad_case_line_costs_that_case_alone_and_names_its_line()
    {
        const string Good = """{"id": "good", "source": "s", "model": "smollm2-135m", "measured": {"what": "parameters", "bytes": 134515008, "exact": true}}""";
        byte[] cases =
        [
            .. Encoding.UTF8.GetBytes(Good + "\n"),
            .. """{"id": "surrogate", "source": "s\ud800", "model": "smollm2-135m", "measured": {"what": "parameters", "bytes": 1, "exact": true}}"""u8, (byte)'\n',
            .. """{"id": "bytes", "source": """u8, (byte)'"', 0xC3, (byte)'"', .. """, "model": "smollm2-135m", "measured": {"what": "parameters", "bytes": 1, "exact": true}}"""u8, (byte)'\n',
            .. """{"id": "overflow", "source": "s", "model": "smollm2-135m", "seq": 99999999999999999999999, "measured": {"what": "parameters", "bytes": 1, "exact": true}}"""u8, (byte)'\n',
            .. Encoding.UTF8.GetBytes(Good.Replace("\"good\"", "\"good-2\"", StringComparison.Ordinal) + "\n"),
        ];
        string path = Write("cases.jsonl", cases);

        (int code, string output, string error) = CliTests.Run("validate", path, "--json");

        Assert.Equal(2, code);
        // The good cases ran: SmolLM2-135M has 134,515,008 parameters (data/models/smollm2-135m.json).
        Assert.Contains("\"good\"", output, StringComparison.Ordinal);
        Assert.Contains("\"good-2\"", output, StringComparison.Ordinal);
        string[] lines = error.Trim().Split('\n').Select(l => l.TrimEnd('\r')).ToArray();
        Assert.Equal(3, lines.Length);
        Assert.StartsWith($"error: {path} line 2: 'source' holds an escaped lone surrogate", lines[0], StringComparison.Ordinal);
        Assert.Equal($"error: {path} line 3: 'source' is not valid UTF-8.", lines[1]);
        Assert.StartsWith($"error: {path} line 4: 'seq'", lines[2], StringComparison.Ordinal);
    }

    [Fact]
    public void Serve_on_a_busy_port_is_one_line_and_exit_2()
    {
        // Port 0: the OS picks a free port, which this listener then holds for the whole test.
        using var busy = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        busy.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        busy.Listen();
        int port = ((IPEndPoint)busy.LocalEndPoint!).Port;

        string error = OneLineExit2(CliTests.Run("serve", "--urls", $"http://127.0.0.1:{port}"));

        Assert.Contains($"127.0.0.1:{port}", error, StringComparison.Ordinal);
        Assert.Contains("address already in use", error, StringComparison.Ordinal);
    }
}
