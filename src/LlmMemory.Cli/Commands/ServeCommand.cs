using System.CommandLine;
using LlmMemory.Web;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Hosting;

namespace LlmMemory.Cli.Commands;

/// <summary><c>llm-memory serve [--urls URL]</c>: the web page and JSON API, on loopback unless told otherwise.</summary>
internal static class ServeCommand
{
    public static Command Create(CliOutput io)
    {
        var urls = new Option<string>("--urls")
        {
            Description = "Where to listen; several separated by ';'. Loopback by default: the API has no authentication.",
            DefaultValueFactory = _ => WebServer.DefaultUrl,
        };
        var command = new Command("serve", "Serve the web page and JSON API (POST /api/estimate, /api/fit; GET /api/models, /api/gpus, /api/dtypes; /openapi/v1.json).") { urls };
        command.SetAction(async (parse, cancellation) =>
        {
            string value = parse.GetValue(urls)!;
            foreach (string url in value.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                if (!Uri.TryCreate(url.Replace("://*", "://0.0.0.0", StringComparison.Ordinal).Replace("://+", "://0.0.0.0", StringComparison.Ordinal),
                        UriKind.Absolute, out Uri? uri) || uri.Scheme is not ("http" or "https"))
                {
                    throw new FormatException($"--urls '{url}' is not an http:// or https:// URL such as {WebServer.DefaultUrl}.");
                }

                if (!uri.IsLoopback)
                {
                    await io.Error.WriteLineAsync($"warning: {url} is reachable from other machines; the API has no authentication.");
                }
            }

            // The line below says where it listens; ASP.NET Core's own start-up lines would repeat it. A failed start is the one
            // error line CliApp prints, not the host's logged stack trace as well.
            await using WebApplication app = WebServer.Create(["--urls", value, "--Logging:LogLevel:Microsoft.Hosting.Lifetime=Warning",
                "--Logging:LogLevel:Microsoft.Extensions.Hosting.Internal.Host=None"]);
            try
            {
                await app.StartAsync(cancellation);
            }
            catch (IOException error) when (error.InnerException is Microsoft.AspNetCore.Connections.AddressInUseException)
            {
                throw new IOException($"{error.Message.TrimEnd('.')}; stop what listens there or choose another port with --urls.", error);
            }
            foreach (string address in app.Urls)
            {
                await io.Out.WriteLineAsync($"llm-memory: serving the page and API at {address}/ (Ctrl+C to stop)");
            }

            await app.WaitForShutdownAsync(cancellation);
            return 0;
        });
        return command;
    }
}
