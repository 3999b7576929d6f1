using Microsoft.AspNetCore.Builder;

namespace LlmMemory.Web;

/// <summary>Runs the page and API on its own: <c>dotnet run --project src/LlmMemory.Web -- --urls http://127.0.0.1:5000</c>.</summary>
/// <remarks>The installed tool runs the same server through <c>llm-memory serve</c>.</remarks>
public sealed class Program
{
    private Program()
    {
    }

    public static void Main(string[] args) => WebServer.Create(args).Run();
}
