using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using LlmMemory.Web.Tests.Support;
using Microsoft.Playwright;
using Xunit.Abstractions;

namespace LlmMemory.Web.Tests.Browser;

/// <summary>End-to-end: the page in real Chromium against the real server, checked against the API's own answers.</summary>
[Collection(SharedBrowser.Name)]
public sealed class PageTests(BrowserFixture browser, ITestOutputHelper output)
{
    /// <summary>Waits until the page shows the answers for the scenario it last sent, and returns that scenario.</summary>
    private static async Task<JsonNode> Settled(IPage page)
    {
        ILocator results = page.Locator("#results[data-status=ready]");
        await results.WaitForAsync();
        return JsonNode.Parse((await results.GetAttributeAsync("data-scenario"))!)!;
    }

    private static async Task<long> ShownTotal(IPage page) =>
        long.Parse((await page.Locator("#total-bytes").GetAttributeAsync("data-bytes"))!, CultureInfo.InvariantCulture);

    private async Task<long> ApiTotal(string scenario)
    {
        using var client = new HttpClient { BaseAddress = browser.App!.Address };
        ApiResponse response = await client.Post("/api/estimate", scenario);
        return response.Body!["total_bytes"]!.GetValue<long>();
    }

    private void Took(Stopwatch clock, string what) => output.WriteLine($"{what}: {clock.Elapsed.TotalSeconds:F2} s");

    [SkippableFact]
    public async Task Choosing_Llama_3_1_8B_QLoRA_on_a_24_GB_GPU_shows_the_APIs_total()
    {
        var clock = Stopwatch.StartNew();
        IPage page = await browser.NewPageAsync();
        await page.GotoAsync("/#model=gpt2&gpu=");
        await Settled(page);

        await page.GetByLabel("Search the catalog").FillAsync("meta-llama/Llama-3.1-8B");
        await page.GetByLabel("QLoRA").CheckAsync();
        await page.GetByLabel("GPU", new() { Exact = true }).SelectOptionAsync("rtx-4090");
        JsonNode scenario = await Settled(page);
        long shown = await ShownTotal(page);

        long api = await ApiTotal("""{"model": "llama-3.1-8b", "mode": "qlora", "gpu": "rtx-4090", "batch": 1, "seq": 2048}""");
        Assert.Equal(api, shown);
        Assert.Equal("llama-3.1-8b", scenario["model"]!.GetValue<string>());
        string gib = (api / (double)(1L << 30)).ToString("F2", CultureInfo.InvariantCulture) + " GiB";
        await Assertions.Expect(page.Locator("#total-gib")).ToHaveTextAsync(gib);
        await Assertions.Expect(page.Locator("#fit-line")).ToContainTextAsync("RTX 4090");
        Assert.True(await page.Locator("#bar rect[fill^='url(#bar-']").CountAsync() >= 1);
        Assert.True(await page.Locator("#seq-chart polyline").CountAsync() == 1);
        Assert.True(await page.Locator("#components tbody tr").CountAsync() >= 1);
        Took(clock, "QLoRA on a 24 GB GPU");
    }

    /// <summary>The README's picture: the Quick start's scenario (Llama-3.1-8B at an 8k context) on a 24 GB card.</summary>
    [SkippableFact]
    public async Task The_page_for_the_quick_start_scenario_is_photographed()
    {
        var clock = Stopwatch.StartNew();
        IPage page = await browser.NewPageAsync();
        await page.GotoAsync("/#model=llama-3.1-8b&mode=inference&gpu=rtx-4090&batch=1&seq=8192");
        await Settled(page);
        long api = await ApiTotal("""{"model": "llama-3.1-8b", "gpu": "rtx-4090", "batch": 1, "seq": 8192}""");
        Assert.Equal(api, await ShownTotal(page));
        using (var client = new HttpClient { BaseAddress = browser.App!.Address })
        {
            // The page's "What fits" table answers what /api/fit answers for the same scenario.
            ApiResponse fit = await client.Post("/api/fit", """{"model": "llama-3.1-8b", "gpu": "rtx-4090", "batch": 1, "seq": 8192}""");
            string longest = fit.Body!["max_seq"]!.GetValue<int>().ToString("N0", CultureInfo.InvariantCulture) + " tokens";
            await Assertions.Expect(page.Locator(".fit-table tbody tr").Nth(1).Locator("td").First).ToHaveTextAsync(longest);
        }

        string png = Path.Combine(AppContext.BaseDirectory, "serve.png");
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = png, FullPage = true });
        Assert.Equal([0x89, (byte)'P', (byte)'N', (byte)'G'], File.ReadAllBytes(png).Take(4));
        KeepScreenshot(png);
        Took(clock, "quick-start scenario with screenshot");
    }

    [SkippableFact]
    public async Task A_shared_link_restores_the_same_state_and_total()
    {
        var clock = Stopwatch.StartNew();
        IPage page = await browser.NewPageAsync();
        await page.GotoAsync("/#model=qwen2.5-7b&mode=lora&gpu=a100-80gb&batch=4&seq=4096&lora_r=32&optimizer=adamw-8bit&gpus=2&fsdp=full_shard");
        JsonNode scenario = await Settled(page);

        await Assertions.Expect(page.GetByLabel("Search the catalog")).ToHaveValueAsync("qwen2.5-7b");
        await Assertions.Expect(page.GetByLabel("LoRA", new() { Exact = true })).ToBeCheckedAsync();
        await Assertions.Expect(page.GetByLabel("GPU", new() { Exact = true })).ToHaveValueAsync("a100-80gb");
        await Assertions.Expect(page.Locator("#batch")).ToHaveValueAsync("4");
        await Assertions.Expect(page.Locator("#seq")).ToHaveValueAsync("4096");
        await Assertions.Expect(page.Locator("#lora_r")).ToHaveValueAsync("32");
        await Assertions.Expect(page.Locator("#optimizer")).ToHaveValueAsync("adamw-8bit");
        await Assertions.Expect(page.Locator("#gpus")).ToHaveValueAsync("2");
        await Assertions.Expect(page.Locator("#fsdp")).ToHaveValueAsync("full_shard");
        long expected = await ApiTotal("""
            {"model": "qwen2.5-7b", "mode": "lora", "gpu": "a100-80gb", "batch": 4, "seq": 4096, "optimizer": "adamw-8bit", "lora": {"r": 32},
             "parallel": {"gpus": 2, "fsdp": "full_shard"}}
            """);
        Assert.Equal(expected, await ShownTotal(page));

        // Change a setting in the page, then open its share link in a second page: same scenario, same total.
        await page.Locator("#batch").FillAsync("8");
        await page.Locator("#batch").PressAsync("Tab");
        JsonNode changed = await Settled(page);
        Assert.Equal(8, changed["batch"]!.GetValue<int>());
        string link = await page.Locator("#share-url").InputValueAsync();
        IPage second = await browser.NewPageAsync();
        await second.GotoAsync(link);
        JsonNode reopened = await Settled(second);

        Assert.True(JsonNode.DeepEquals(changed, reopened), $"{changed} != {reopened}");
        Assert.Equal(await ShownTotal(page), await ShownTotal(second));
        Assert.False(JsonNode.DeepEquals(scenario, changed));
        Took(clock, "shared link");
    }

    [SkippableFact]
    public async Task Dropping_a_GGUF_file_shows_its_parameters_read_from_the_header()
    {
        var clock = Stopwatch.StartNew();
        IPage page = await browser.NewPageAsync();
        await page.GotoAsync("/");
        await Settled(page);

        await Drop(page, "tiny-llama-Q8_0.gguf", TinyLlama.Gguf());
        JsonNode scenario = await Settled(page);

        // The header's own count (in the browser) and the library's, from the tensors the page sent: both TinyLlama's 49,856,
        // derived by hand in Support/TinyLlama.cs.
        await Assertions.Expect(page.Locator("#file-parameters")).ToHaveTextAsync(TinyLlama.Parameters.ToString("N0", CultureInfo.InvariantCulture));
        await Assertions.Expect(page.Locator("#file-bytes")).ToContainTextAsync(TinyLlama.GgufTensorBytes.ToString("N0", CultureInfo.InvariantCulture) + " bytes");
        await Assertions.Expect(page.Locator("#file-arch")).ToHaveTextAsync("llama");
        await Assertions.Expect(page.Locator("#file-tensors")).ToHaveTextAsync("12");
        await Assertions.Expect(page.Locator("#model-summary")).ToHaveAttributeAsync("data-parameters", TinyLlama.Parameters.ToString(CultureInfo.InvariantCulture));
        JsonNode gguf = scenario["model"]!["gguf"]!;
        Assert.Equal(12, gguf["tensors"]!.AsArray().Count);
        Assert.Equal([64L, 100L], gguf["tensors"]![0]!["shape"]!.AsArray().Select(d => d!.GetValue<long>()));
        Assert.Equal(100, gguf["metadata"]!["tokenizer.ggml.tokens"]!["length"]!.GetValue<int>());
        Assert.Equal("llama.cpp", scenario["engine"]!.GetValue<string>());
        Assert.Null(scenario["weights"]);
        Assert.Equal(await ApiTotal(scenario.ToJsonString()), await ShownTotal(page));
        // general.file_type 7 is LLAMA_FTYPE_MOSTLY_Q8_0 (include/llama.h): the library names it; the page no longer does.
        await Assertions.Expect(page.Locator("#notes")).ToContainTextAsync("general.file_type 7: the file was written as q8_0");
        Took(clock, "GGUF drop");
    }

    [SkippableFact]
    public async Task A_pasted_config_and_a_dropped_safetensors_file_give_their_exact_counts()
    {
        var clock = Stopwatch.StartNew();
        IPage page = await browser.NewPageAsync();
        await page.GotoAsync("/");
        await Settled(page);

        await page.GetByText("Paste a config.json").ClickAsync();
        await page.GetByLabel("config.json of a Hugging Face model").FillAsync(TinyLlama.Config().ToJsonString());
        await page.GetByRole(AriaRole.Button, new() { Name = "Use this config" }).ClickAsync();
        JsonNode pasted = await Settled(page);
        await Assertions.Expect(page.Locator("#model-summary")).ToHaveAttributeAsync("data-parameters", TinyLlama.Parameters.ToString(CultureInfo.InvariantCulture));
        Assert.Equal(100, pasted["model"]!["config"]!["vocab_size"]!.GetValue<int>());

        // Two tensors (safetensors format: u64 header length, JSON header, data): a BF16 [100, 64] = 6,400 elements in
        // 12,800 bytes and an F32 [64] = 64 elements in 256 bytes; 6,464 elements, 13,056 bytes.
        await Drop(page, "model.safetensors", Safetensors(
            """{"embed.weight": {"dtype": "BF16", "shape": [100, 64], "data_offsets": [0, 12800]}, "norm.weight": {"dtype": "F32", "shape": [64], "data_offsets": [12800, 13056]}, "__metadata__": {"format": "pt"}}""",
            13_056));
        JsonNode dropped = await Settled(page);

        await Assertions.Expect(page.Locator("#file-format")).ToHaveTextAsync("safetensors");
        await Assertions.Expect(page.Locator("#file-parameters")).ToHaveTextAsync("6,464");
        await Assertions.Expect(page.Locator("#file-bytes")).ToContainTextAsync("13,056 bytes");
        Assert.Equal("6464", dropped["model"]!.GetValue<string>());
        Took(clock, "pasted config and safetensors drop");
    }

    /// <summary>
    /// Issue 17 ("and the page, by drop"): torchtune's published LoRA recipe dropped on the page sets what the CLI's
    /// <c>--config</c> sets, the settings the form has no control for travel beside it, and the total is the CLI's.
    /// </summary>
    [SkippableFact]
    public async Task A_dropped_torchtune_recipe_fills_the_form_and_gives_the_clis_total()
    {
        var clock = Stopwatch.StartNew();
        IPage page = await browser.NewPageAsync();
        await page.GotoAsync("/#model=gpt2&gpu=rtx-4090");
        await Settled(page);

        await Drop(page, "lora_single_device.yaml", File.ReadAllBytes(Api.StackConfigApiTests.Recipe));
        await Assertions.Expect(page.Locator("#stack-info")).ToBeVisibleAsync();
        JsonNode scenario = await Settled(page);

        // The recipe: lora_llama3_1_8b, batch_size: 2, gradient_accumulation_steps: 8, enable_activation_checkpointing: True,
        // dtype: bf16, optimizer torch.optim.AdamW with fused: True, LoRA on q, v, output and the MLP at rank 8.
        await Assertions.Expect(page.GetByLabel("Search the catalog")).ToHaveValueAsync("llama-3.1-8b");
        await Assertions.Expect(page.GetByLabel("LoRA", new() { Exact = true })).ToBeCheckedAsync();
        await Assertions.Expect(page.Locator("#batch")).ToHaveValueAsync("2");
        await Assertions.Expect(page.Locator("#gradient_accumulation")).ToHaveValueAsync("8");
        await Assertions.Expect(page.Locator("#gradient_checkpointing")).ToHaveValueAsync("full");
        await Assertions.Expect(page.Locator("#lora_r")).ToHaveValueAsync("8");
        Assert.Equal("torchtune", scenario["engine"]!.GetValue<string>());
        Assert.True(scenario["fused"]!.GetValue<bool>());
        Assert.Equal(6, scenario["lora"]!["targets"]!.AsArray().Count);
        await Assertions.Expect(page.Locator("#stack-not-used")).ToContainTextAsync("profiler");
        await Assertions.Expect(page.Locator("#stack-not-modelled")).ToContainTextAsync("loss._component_");

        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        int code = LlmMemory.Cli.CliApp.Run(["estimate", "--config", Api.StackConfigApiTests.Recipe, "--gpu", "rtx-4090", "--seq", "2048", "--json"], stdout, stderr);
        Assert.True(code == 0, stderr.ToString());
        Assert.Equal(JsonNode.Parse(stdout.ToString())!["total_bytes"]!.GetValue<long>(), await ShownTotal(page));

        // A shared link carries the settings beside the form; dropping them leaves the form's scenario.
        string link = await page.Locator("#share-url").InputValueAsync();
        IPage second = await browser.NewPageAsync();
        await second.GotoAsync(link);
        Assert.True(JsonNode.DeepEquals(scenario, await Settled(second)));
        await second.GetByRole(AriaRole.Button, new() { Name = "Drop the config's settings the form does not show" }).ClickAsync();
        await Assertions.Expect(second.Locator("#stack-info")).ToBeHiddenAsync();
        JsonNode cleared = await Settled(second);
        Assert.Null(cleared["fused"]);
        Assert.Null(cleared["lora"]?["targets"]);
        Took(clock, "torchtune recipe drop");
    }

    /// <summary>Issue 20: the allocator's settings on the page, with what they change in the library's note.</summary>
    [SkippableFact]
    public async Task Allocator_settings_are_sent_for_a_one_GPU_replay_and_their_effect_is_noted()
    {
        IPage page = await browser.NewPageAsync();
        await page.GotoAsync("/#model=qwen2.5-0.5b&mode=training&gpu=h100-80gb&batch=4&seq=1024");
        await Settled(page);

        await page.GetByLabel("PyTorch allocator settings").FillAsync("expandable_segments:True");
        await page.GetByLabel("PyTorch allocator settings").PressAsync("Tab");
        JsonNode scenario = await Settled(page);

        Assert.Equal("expandable_segments:True", scenario["alloc_conf"]!.GetValue<string>());
        await Assertions.Expect(page.Locator("#notes")).ToContainTextAsync("alloc_conf \"expandable_segments:True\": peak reserved");
        Assert.Equal(await ApiTotal(scenario.ToJsonString()), await ShownTotal(page));

        // Two GPUs under FSDP run on the sharded path, which has no allocator replay: the control goes, and so does the field.
        await page.Locator("#gpus").FillAsync("2");
        await page.Locator("#fsdp").SelectOptionAsync("full_shard");
        await Assertions.Expect(page.GetByLabel("PyTorch allocator settings")).ToBeHiddenAsync();
        JsonNode sharded = await Settled(page);
        Assert.Null(sharded["alloc_conf"]);
    }

    private static byte[] Safetensors(string header, int dataBytes)
    {
        byte[] json = System.Text.Encoding.UTF8.GetBytes(header);
        byte[] file = new byte[8 + json.Length + dataBytes];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(file, (ulong)json.Length);
        json.CopyTo(file, 8);
        return file;
    }

    /// <summary>
    /// Issue 16: a vLLM question answered on the page alone. The context is vLLM's max_model_len (one control: the library refuses
    /// both at once); the serving controls are the ones the engine reads; the KV pool's facts are the API's.
    /// </summary>
    [SkippableFact]
    public async Task A_vLLM_question_is_answered_with_the_serving_controls_and_the_KV_pool_facts()
    {
        var clock = Stopwatch.StartNew();
        IPage page = await browser.NewPageAsync();
        await page.GotoAsync("/#model=llama-3.1-8b&mode=inference&gpu=l4-24gb&batch=1&seq=16384");
        await Settled(page);
        await Assertions.Expect(page.Locator("#serving-settings")).ToBeHiddenAsync();

        await page.GetByLabel("Engine", new() { Exact = true }).SelectOptionAsync("vllm");
        JsonNode scenario = await Settled(page);
        await Assertions.Expect(page.GetByLabel("Context length = max model length (tokens)")).ToHaveValueAsync("16384");
        await Assertions.Expect(page.GetByLabel("GPU memory utilization (fraction)")).ToBeVisibleAsync();
        await Assertions.Expect(page.GetByLabel("Max sequences at once")).ToBeVisibleAsync();
        await Assertions.Expect(page.GetByLabel("Engine version", new() { Exact = true })).ToBeVisibleAsync();
        Assert.Null(scenario["engine_options"]);
        // vLLM takes no batch: the control goes, and the scenario carries none.
        await Assertions.Expect(page.Locator("#batch")).ToBeHiddenAsync();
        Assert.Null(scenario["batch"]);
        // The context (16,384) is the max_model_len vLLM is sized for when none is given.
        await Assertions.Expect(page.Locator("#fact-max_model_len")).ToHaveTextAsync("16,384 tokens");
        Assert.Equal(await ApiTotal("""{"model": "llama-3.1-8b", "engine": "vllm", "gpu": "l4-24gb", "seq": 16384}"""), await ShownTotal(page));

        await page.GetByLabel("Context length = max model length (tokens)").FillAsync("8192");
        await page.GetByLabel("GPU memory utilization (fraction)").FillAsync("0.8");
        await page.GetByLabel("GPU memory utilization (fraction)").PressAsync("Tab");
        scenario = await Settled(page);
        Assert.Equal(8192, scenario["seq"]!.GetValue<int>());
        Assert.Equal(0.8, scenario["engine_options"]!["gpu_memory_utilization"]!.GetValue<double>());
        await Assertions.Expect(page.Locator("#fact-max_model_len")).ToHaveTextAsync("8,192 tokens");
        using (var client = new HttpClient { BaseAddress = browser.App!.Address })
        {
            ApiResponse api = await client.Post("/api/estimate", """
                {"model": "llama-3.1-8b", "engine": "vllm", "gpu": "l4-24gb", "seq": 8192, "engine_options": {"gpu_memory_utilization": 0.8}}
                """);
            Assert.Equal(api.Body!["total_bytes"]!.GetValue<long>(), await ShownTotal(page));
            long pool = api.Body["facts"]!["kv_tokens"]!.GetValue<long>();
            await Assertions.Expect(page.Locator("#fact-kv_tokens")).ToContainTextAsync(pool.ToString("N0", CultureInfo.InvariantCulture) + " tokens");
        }

        // SGLang reads the length and the utilization, not vLLM's max_num_seqs; transformers reads none of them.
        await page.GetByLabel("Engine", new() { Exact = true }).SelectOptionAsync("sglang");
        scenario = await Settled(page);
        await Assertions.Expect(page.GetByLabel("Max sequences at once")).ToBeHiddenAsync();
        Assert.Equal(0.8, scenario["engine_options"]!["gpu_memory_utilization"]!.GetValue<double>());
        await page.GetByLabel("Engine", new() { Exact = true }).SelectOptionAsync("");
        scenario = await Settled(page);
        await Assertions.Expect(page.Locator("#serving-settings")).ToBeHiddenAsync();
        await Assertions.Expect(page.Locator("#serving-facts")).ToBeHiddenAsync();
        await Assertions.Expect(page.Locator("#batch")).ToBeVisibleAsync();
        Assert.Null(scenario["engine_options"]);
        Assert.Equal(1, scenario["batch"]!.GetValue<int>());
        Took(clock, "vLLM question");
    }

    [SkippableFact]
    public async Task A_broken_file_or_setting_is_reported_in_words_naming_it()
    {
        var clock = Stopwatch.StartNew();
        IPage page = await browser.NewPageAsync();
        await page.GotoAsync("/");
        await Settled(page);

        byte[] gguf = TinyLlama.Gguf();
        await Drop(page, "truncated.gguf", gguf[..200]);
        await Assertions.Expect(page.Locator("#error")).ToContainTextAsync("truncated.gguf");

        await page.Locator("#seq").FillAsync("0");
        await page.Locator("#seq").PressAsync("Tab");
        await Assertions.Expect(page.Locator("#error")).ToContainTextAsync("seq");
        await Assertions.Expect(page.Locator("#seq")).ToHaveAttributeAsync("aria-invalid", "true");
        Took(clock, "errors");
    }

    [SkippableFact]
    public async Task Every_control_has_a_label_and_the_form_works_from_the_keyboard()
    {
        var clock = Stopwatch.StartNew();
        IPage page = await browser.NewPageAsync();
        await page.GotoAsync("/");
        await Settled(page);

        string[] unlabelled = await page.EvaluateAsync<string[]>(
            "() => [...document.querySelectorAll('input, select, textarea, button')].filter(c => c.labels?.length === 0 && !c.getAttribute('aria-label') && !c.textContent.trim()).map(c => c.id || c.name)");
        Assert.Empty(unlabelled);

        await page.Locator("#model-search").FocusAsync();
        await page.Keyboard.PressAsync("Control+A");
        await page.Keyboard.TypeAsync("qwen2.5-0.5b");
        await page.Keyboard.PressAsync("Enter");
        await page.GetByLabel("Inference").FocusAsync();
        await page.Keyboard.PressAsync("ArrowRight");
        await Assertions.Expect(page.GetByLabel("Full training")).ToBeCheckedAsync();
        JsonNode scenario = await Settled(page);

        Assert.Equal("qwen2.5-0.5b", scenario["model"]!.GetValue<string>());
        Assert.Equal("training", scenario["mode"]!.GetValue<string>());
        Took(clock, "keyboard");
    }

    /// <summary>Drops a file on the drop zone as a user's drag and drop does: a DataTransfer holding a File.</summary>
    private static async Task Drop(IPage page, string name, byte[] bytes) =>
        await page.EvaluateAsync("""
            ([name, base64]) => {
              const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
              const transfer = new DataTransfer();
              transfer.items.add(new File([bytes], name));
              const zone = document.getElementById('drop-zone');
              for (const type of ['dragenter', 'dragover', 'drop']) {
                zone.dispatchEvent(new DragEvent(type, { dataTransfer: transfer, bubbles: true, cancelable: true }));
              }
            }
            """, new[] { name, Convert.ToBase64String(bytes) });

    /// <summary>With LLM_MEMORY_UPDATE_SCREENSHOT=1 the screenshot replaces docs/serve.png (the README's picture).</summary>
    private void KeepScreenshot(string png)
    {
        if (Environment.GetEnvironmentVariable("LLM_MEMORY_UPDATE_SCREENSHOT") != "1")
        {
            return;
        }

        DirectoryInfo? root = new(AppContext.BaseDirectory);
        while (root is not null && !File.Exists(Path.Combine(root.FullName, "LlmMemory.slnx")))
        {
            root = root.Parent;
        }

        if (root is not null)
        {
            Directory.CreateDirectory(Path.Combine(root.FullName, "docs"));
            File.Copy(png, Path.Combine(root.FullName, "docs", "serve.png"), overwrite: true);
            output.WriteLine($"screenshot kept in {Path.Combine(root.FullName, "docs", "serve.png")}");
        }
    }
}
