using LlmMemory.Web.Tests.Support;
using Microsoft.Playwright;

namespace LlmMemory.Web.Tests.Browser;

/// <summary>
/// The app on a real loopback port and one headless Debian Chromium, shared by the browser tests.
/// Playwright's .NET driver ships in its NuGet package; the browser is the system's (no <c>playwright install</c>).
/// </summary>
public sealed class BrowserFixture : IAsyncLifetime
{
    /// <summary>Debian's chromium package (<c>apt-get install chromium</c>; .ci/run installs it).</summary>
    public const string ChromiumPath = "/usr/bin/chromium";

    private IPlaywright? _playwright;

    public KestrelApp? App { get; private set; }

    public IBrowser? Browser { get; private set; }

    /// <summary>Why the browser tests cannot run here, or null when they can.</summary>
    public string? Missing { get; private set; }

    public async Task InitializeAsync()
    {
        if (!File.Exists(ChromiumPath))
        {
            Missing = $"{ChromiumPath} is missing; install Debian's chromium (apt-get install -y chromium) to run the browser tests.";
            return;
        }

        App = new KestrelApp();
        // Expectations wait for the page as long as its steps do (below): 5 s, Playwright's default, is load-sensitive.
        Assertions.SetDefaultExpectTimeout(120_000);
        _playwright = await Playwright.CreateAsync();
        Browser = await _playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = ChromiumPath,
            Headless = true,
            Args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run"],
        });
    }

    public async Task DisposeAsync()
    {
        if (Browser is not null)
        {
            await Browser.DisposeAsync();
        }

        _playwright?.Dispose();
        if (App is not null)
        {
            await App.DisposeAsync();
        }
    }

    /// <summary>
    /// A fresh page on the app, <paramref name="width"/> CSS pixels wide (a desktop by default; 360 is a small phone).
    /// Without Chromium the test fails when CI is set (CI must run it) and is skipped otherwise.
    /// </summary>
    public async Task<IPage> NewPageAsync(int width = 1400)
    {
        if (Missing is not null)
        {
            Assert.True(Environment.GetEnvironmentVariable("CI") is null, Missing);
            Skip.If(true, Missing);
        }

        IBrowserContext context = await Browser!.NewContextAsync(new BrowserNewContextOptions
        {
            BaseURL = App!.Address.ToString(),
            ViewportSize = new ViewportSize { Width = width, Height = 1000 },
        });
        // A wait, not a speed check: the page settles once every replay behind its curves and fit is done, which took 18 s
        // for an 8B QLoRA page on a two-core machine at load 13 (15 s failed it), so a waiting step gives up only after 2 minutes.
        context.SetDefaultTimeout(120_000);
        context.SetDefaultNavigationTimeout(120_000);
        return await context.NewPageAsync();
    }
}

/// <summary>Every browser test class shares one app and one Chromium, and they run one class at a time: two browsers at
/// once on a loaded two-core machine only make each slower.</summary>
[CollectionDefinition(Name)]
public sealed class SharedBrowser : ICollectionFixture<BrowserFixture>
{
    public const string Name = "browser";
}
