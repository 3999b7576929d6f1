using System.Globalization;
using System.Text.Json.Nodes;
using Deque.AxeCore.Commons;
using Deque.AxeCore.Playwright;
using LlmMemory.Web.Tests.Support;
using Microsoft.Playwright;

namespace LlmMemory.Web.Tests.Browser;

/// <summary>The page on a phone, with a keyboard and a screen reader, when a request fails, and comparing scenarios.</summary>
[Collection(SharedBrowser.Name)]
public sealed class PageForEveryoneTests(BrowserFixture browser)
{
    /// <summary>Llama-3.1-8B LoRA on a 24 GB card: a breakdown with long formulas, both curves, the fit table and a step's timeline.</summary>
    private const string Training = "/#model=llama-3.1-8b&mode=lora&gpu=rtx-4090&batch=1&seq=2048";

    /// <summary>Waits for the answers to the scenario last sent (a training scenario asks four questions; a loaded machine is slow).</summary>
    private static async Task<JsonNode> Settled(IPage page)
    {
        ILocator results = page.Locator("#results[data-status=ready]");
        await results.WaitForAsync(new() { Timeout = 120_000 });
        return JsonNode.Parse((await results.GetAttributeAsync("data-scenario"))!)!;
    }

    private async Task<JsonNode> ApiEstimate(string scenario)
    {
        using var client = new HttpClient { BaseAddress = browser.App!.Address };
        return (await client.Post("/api/estimate", scenario)).Body!;
    }

    private static async Task AddToCompare(IPage page, int kept)
    {
        await page.Locator("#compare-add").FocusAsync();
        await page.Keyboard.PressAsync("Enter");
        await Assertions.Expect(page.Locator("#compare-table tbody tr")).ToHaveCountAsync(kept);
    }

    private static async Task BreakSeq(IPage page)
    {
        await page.Locator("#seq").FillAsync("0");
        await page.Locator("#seq").PressAsync("Tab");
        await Assertions.Expect(page.Locator("#error")).ToBeVisibleAsync();
    }

    [SkippableFact]
    public async Task At_360_px_the_page_with_a_result_and_a_comparison_does_not_scroll_sideways()
    {
        IPage page = await browser.NewPageAsync(width: 360);
        await page.GotoAsync(Training);
        await Settled(page);
        await AddToCompare(page, kept: 1);
        await Assertions.Expect(page.Locator("#timeline-chart circle").First).ToBeVisibleAsync();

        int[] widths = await page.EvaluateAsync<int[]>("() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]");
        string[] wide = await page.EvaluateAsync<string[]>("""
            (width) => [...document.body.querySelectorAll('*')].filter((e) => !e.parentElement.closest('.scroll') && e.getBoundingClientRect().right > width)
              .map((e) => `${e.tagName.toLowerCase()}#${e.id}.${e.className?.baseVal ?? e.className}: ${Math.round(e.getBoundingClientRect().right)} px`)
            """, widths[1]);
        Assert.True(widths[0] <= widths[1], $"the page is {widths[0]} px wide in a {widths[1]} px window; too wide:\n{string.Join("\n", wide.Take(10))}");
        foreach (string chart in new[] { "#bar", "#seq-chart", "#timeline-chart", "#compare-chart" })
        {
            LocatorBoundingBoxResult box = (await page.Locator(chart).BoundingBoxAsync())!;
            Assert.True(box.X >= 0 && box.X + box.Width <= widths[1], $"{chart} spans {box.X}..{box.X + box.Width} px");
        }
    }

    [SkippableFact]
    public async Task Axe_finds_no_serious_or_critical_violation_with_a_result_or_an_error_shown()
    {
        IPage page = await browser.NewPageAsync();
        await page.GotoAsync(Training);
        await Settled(page);
        await AddToCompare(page, kept: 1);
        await page.GetByText("Data for this chart").First.ClickAsync();
        AssertNoSeriousViolations(await page.RunAxe(), "with a result");

        await BreakSeq(page);
        AssertNoSeriousViolations(await page.RunAxe(), "with an error");
    }

    private static void AssertNoSeriousViolations(AxeResult result, string when)
    {
        string[] serious = result.Violations
            .Where(v => v.Impact is "serious" or "critical")
            .Select(v => $"{v.Id} ({v.Impact}): {v.Help} at {string.Join(", ", v.Nodes.Select(n => n.Target.ToString()))}")
            .ToArray();
        Assert.True(serious.Length == 0, $"{when}:\n{string.Join("\n", serious)}");
    }

    [SkippableFact]
    public async Task An_error_replaces_the_result_it_makes_stale_in_the_forms_words()
    {
        IPage page = await browser.NewPageAsync();
        await page.GotoAsync(Training);
        await Settled(page);
        await Assertions.Expect(page.Locator("#components")).ToBeVisibleAsync();

        await BreakSeq(page);
        await Assertions.Expect(page.Locator("#summary")).ToBeHiddenAsync();
        await Assertions.Expect(page.Locator("#components")).ToBeHiddenAsync();
        await Assertions.Expect(page.Locator("#fit-answers")).ToBeHiddenAsync();
        await Assertions.Expect(page.Locator("#error")).ToContainTextAsync("seq");
        await Assertions.Expect(page.Locator("#error")).Not.ToContainTextAsync("request body");

        await page.Locator("#seq").FillAsync("2048");
        await page.Locator("#seq").PressAsync("Tab");
        await Settled(page);
        await Assertions.Expect(page.Locator("#error")).ToBeHiddenAsync();
        await Assertions.Expect(page.Locator("#components")).ToBeVisibleAsync();
    }

    [SkippableFact]
    public async Task The_compare_view_draws_LoRA_and_QLoRA_as_stacked_bars_on_one_axis()
    {
        IPage page = await browser.NewPageAsync();
        await page.GotoAsync(Training);
        await Settled(page);
        await AddToCompare(page, kept: 1);
        await page.GetByLabel("QLoRA").CheckAsync();
        await Settled(page);
        await AddToCompare(page, kept: 2);

        JsonNode lora = await ApiEstimate("""{"model": "llama-3.1-8b", "mode": "lora", "gpu": "rtx-4090", "batch": 1, "seq": 2048}""");
        JsonNode qlora = await ApiEstimate("""{"model": "llama-3.1-8b", "mode": "qlora", "gpu": "rtx-4090", "batch": 1, "seq": 2048}""");
        ILocator rows = page.Locator("#compare-table tbody tr");
        await Assertions.Expect(rows.Nth(0).Locator("td").First).ToHaveTextAsync(Gib(lora["total_bytes"]!.GetValue<long>()));
        await Assertions.Expect(rows.Nth(1).Locator("td").First).ToHaveTextAsync(Gib(qlora["total_bytes"]!.GetValue<long>()));

        // One stacked bar per scenario, a segment per device part. On one axis the first segments (the weights: bf16 for LoRA,
        // 4-bit for QLoRA) are as long as their bytes times the same scale. (A part too thin to see is drawn half a unit wide.)
        ILocator bars = page.Locator("#compare-chart g.scenario");
        await Assertions.Expect(bars).ToHaveCountAsync(2);
        double[] scale = new double[2];
        for (int i = 0; i < 2; i++)
        {
            JsonNode[] parts = [.. (i == 0 ? lora : qlora)["components"]!.AsArray()
                .Where(c => c!["residence"]!.GetValue<string>() == "device" && c["bytes"]!.GetValue<long>() > 0).Select(c => c!)];
            Assert.Equal(parts.Length, await bars.Nth(i).Locator("rect").CountAsync());
            double width = await bars.Nth(i).Locator("rect").First.EvaluateAsync<double>("r => r.width.baseVal.value");
            scale[i] = width / parts[0]["bytes"]!.GetValue<long>();
        }

        Assert.Equal(scale[0], scale[1], 1e-6 * scale[0]); // SVG lengths are single-precision floats

        await page.GetByRole(AriaRole.Button, new() { Name = "Remove 1." }).PressAsync("Enter");
        await Assertions.Expect(bars).ToHaveCountAsync(1);
        await page.Locator("#compare-clear").PressAsync("Enter");
        await Assertions.Expect(page.Locator("#compare-view")).ToBeHiddenAsync();
    }

    private static string Gib(long bytes) => (bytes / (double)(1L << 30)).ToString("F2", CultureInfo.InvariantCulture);

    [SkippableFact]
    public async Task Tab_reaches_every_control_and_shows_where_the_focus_is()
    {
        IPage page = await browser.NewPageAsync();
        await page.GotoAsync(Training);
        await Settled(page);
        await AddToCompare(page, kept: 1);

        // Every visible, enabled control; of a radio group only the checked radio is in the Tab order.
        string[] controls = await page.EvaluateAsync<string[]>("""
            () => [...document.querySelectorAll('a[href], button, input, select, textarea, summary, [tabindex="0"]')]
              .filter((c) => c.checkVisibility() && !c.disabled && !(c.type === 'radio' && !c.checked))
              .map((c, i) => c.dataset.tabProbe = String(i))
            """);
        var reached = new HashSet<string>();
        await page.Locator("body").FocusAsync();
        for (int i = 0; i < controls.Length * 2 && reached.Count < controls.Length; i++)
        {
            await page.Keyboard.PressAsync("Tab");
            string?[] focus = await page.EvaluateAsync<string?[]>(
                "() => [document.activeElement?.dataset.tabProbe ?? null, getComputedStyle(document.activeElement).outlineStyle]");
            if (focus[0] is { } probe)
            {
                reached.Add(probe);
                Assert.NotEqual("none", focus[1]);
            }
        }

        string[] missed = await page.EvaluateAsync<string[]>(
            "(reached) => [...document.querySelectorAll('[data-tab-probe]')].filter((c) => !reached.includes(c.dataset.tabProbe)).map((c) => c.outerHTML.slice(0, 80))",
            reached.ToArray());
        Assert.Empty(missed);
    }

    [SkippableFact]
    public async Task Every_row_of_a_training_fit_table_says_why()
    {
        IPage page = await browser.NewPageAsync();
        // Full training of an 8B model needs far more than a 24 GB card, so every row has something to explain.
        await page.GotoAsync("/#model=llama-3.1-8b&mode=training&gpu=rtx-4090&batch=1&seq=2048");
        await Settled(page);

        ILocator why = page.Locator(".fit-table tbody tr td:last-child");
        await Assertions.Expect(why.First).ToBeVisibleAsync();
        foreach (string text in await why.AllTextContentsAsync())
        {
            Assert.False(string.IsNullOrWhiteSpace(text));
        }
    }

    [SkippableFact]
    public async Task A_bare_parameter_count_is_named_by_its_count()
    {
        IPage page = await browser.NewPageAsync();
        await page.GotoAsync("/#model=70B&gpu=");
        await Settled(page);

        // 70B is 70 × 10^9 parameters.
        string summary = (await page.Locator("#model-summary").TextContentAsync())!;
        Assert.Contains(": 70,000,000,000 parameters", summary, StringComparison.Ordinal);
        Assert.False(summary.StartsWith(':'), summary);
    }

    [SkippableFact]
    public async Task A_catalog_model_after_a_dropped_GGUF_gets_the_default_engine_back()
    {
        IPage page = await browser.NewPageAsync();
        await page.GotoAsync("/");
        await Settled(page);
        await page.EvaluateAsync("""
            (base64) => {
              const transfer = new DataTransfer();
              transfer.items.add(new File([Uint8Array.from(atob(base64), (c) => c.charCodeAt(0))], 'tiny.gguf'));
              document.getElementById('drop-zone').dispatchEvent(new DragEvent('drop', { dataTransfer: transfer, bubbles: true, cancelable: true }));
            }
            """, Convert.ToBase64String(TinyLlama.Gguf()));
        await Assertions.Expect(page.Locator("#file-info")).ToBeVisibleAsync();
        Assert.Equal("llama.cpp", (await Settled(page))["engine"]!.GetValue<string>());

        await page.GetByLabel("Search the catalog").FillAsync("qwen2.5-0.5b");
        await page.GetByLabel("Search the catalog").PressAsync("Enter");
        await page.GetByLabel("Full training").CheckAsync();
        JsonNode scenario = await Settled(page);

        Assert.Equal("training", scenario["mode"]!.GetValue<string>());
        Assert.Null(scenario["engine"]);
        await Assertions.Expect(page.Locator("#engine")).ToHaveValueAsync("");
    }
}
