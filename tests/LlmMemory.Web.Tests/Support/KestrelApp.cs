using Microsoft.AspNetCore.Mvc.Testing;

namespace LlmMemory.Web.Tests.Support;

/// <summary>The app on a real Kestrel socket on a free loopback port (.NET 10 <c>UseKestrel(0)</c>), for browsers and raw HTTP.</summary>
public sealed class KestrelApp : WebApplicationFactory<Program>
{
    public KestrelApp()
    {
        UseKestrel(0);
        StartServer();
    }

    /// <summary>The root address, e.g. <c>http://127.0.0.1:41234/</c>.</summary>
    public Uri Address => ClientOptions.BaseAddress;
}
