using System.ClientModel;
using System.ClientModel.Primitives;
using System.Net;
using Gateway.Auth;
using Gateway.Hosting;
using Gateway.Tests.Infrastructure;
using Microsoft.Playwright;
using OpenAI;
using OpenAI.Chat;

namespace Gateway.Tests.Status;

/// <summary>The read-only /status page: served by the gateway, no secrets, driven in a real Chromium by Playwright.</summary>
public sealed class StatusPageTests(Xunit.Abstractions.ITestOutputHelper output) : IAsyncLifetime
{
    private const string KeyA = "sk-status-a-secret-value";
    private const string KeyB = "sk-status-b-secret-value";
    private GatewayHost _gw = null!;

    public async Task InitializeAsync()
    {
        _gw = await TestGateway.StartEmbeddedAsync(
            [(KeyA, "acme/search/svc"), (KeyB, "globex/batch/etl")],
            new Dictionary<string, string?>
            {
                ["Gateway:Scheduling:Tenants:0:Name"] = "acme",
                ["Gateway:Scheduling:Tenants:0:Weight"] = "3",
            });
        await SendAsync(KeyA, 4);
        await SendAsync(KeyB, 2);
    }

    public async Task DisposeAsync() => await _gw.DisposeAsync();

    [Fact]
    public async Task Status_AfterTraffic_ShowsWorkersTenantsAndRegretWithoutSecrets()
    {
        using var http = new HttpClient { BaseAddress = _gw.BaseAddress };
        var resp = await http.GetAsync("status");
        Assert.Equal(HttpStatusCode.OK, resp.StatusCode);
        Assert.StartsWith("text/html", resp.Content.Headers.ContentType?.ToString());
        string html = await resp.Content.ReadAsStringAsync();
        Assert.Contains("http-equiv=\"refresh\"", html);
        Assert.Contains("kv-aware", html);
        Assert.Contains("hfair", html);
        foreach (var w in _gw.Workers.All)
        {
            Assert.Contains(w.Prefix, html);
        }

        Assert.Contains("acme/search/svc", html);
        Assert.Contains("globex/batch/etl", html);
        Assert.Contains("75.0%", html); // acme weight 3 vs globex 1: entitlement 75 %
        Assert.Contains("Recent routing regret", html);
        Assert.DoesNotContain("no completed requests yet", html);
        Assert.DoesNotContain(KeyA, html);
        Assert.DoesNotContain(KeyB, html);
        Assert.DoesNotContain(TestGateway.Secret, html);
        Assert.DoesNotContain(ApiKeyAuthenticator.HashKey(TestGateway.Secret, KeyA), html);
        Assert.DoesNotContain("status page line", html); // no prompt text
    }

    /// <summary>
    /// Debian's Chromium driven by Playwright: open /status, read its tables, send more traffic, follow the page's own
    /// meta refresh to a newer rendering that shows it, and take a screenshot.
    /// </summary>
    [ChromiumFact]
    public async Task Status_InChromiumViaPlaywright_TablesFilled_RefreshShowsNewTraffic_Screenshot()
    {
        string chromium = SystemChromium.Find() ?? throw new Xunit.Sdk.XunitException(
            "chromium is not installed although apt-get is there: run tools/ensure-tools.sh (Debian package 'chromium').");
        using var playwright = await Playwright.CreateAsync();
        await using var browser = await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = chromium,
            Headless = true,
            Args = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking", "--disable-component-update", "--no-first-run"],
            Timeout = 60_000,
        });
        var page = await browser.NewPageAsync(new BrowserNewPageOptions { ViewportSize = new ViewportSize { Width = 1200, Height = 800 } });
        page.SetDefaultTimeout(30_000);
        string url = new Uri(_gw.BaseAddress, "status").ToString();

        var first = await page.GotoAsync(url);
        Assert.NotNull(first);
        Assert.Equal(200, first.Status);
        var (firstDocument, title, tables) = await ReadTablesAsync(page);
        Assert.Equal("LLM gateway status", title); // read in the same script as the tables: a refresh cannot split them
        Assert.Equal(3, tables.Count); // workers, tenants, routing regret
        var workers = tables[0];
        Assert.Equal(["worker", "models", "health", "in flight", "waiting / running (reported)", "KV use"], workers[0]);
        Assert.Equal(_gw.Workers.All.Select(w => w.Prefix).Order(), workers.Skip(1).Select(r => r[0]).Order());
        Assert.All(workers.Skip(1), r => Assert.Contains(r[2], (string[])["healthy", "unhealthy", "draining", "circuit open"]));
        Assert.Contains(workers.Skip(1), r => r[2] == "healthy"); // (a health probe may be late on a busy machine)
        var tenants = tables[1];
        Assert.Equal("75.0%", Row(tenants, "acme/search/svc")[3]);
        double globexBefore = double.Parse(Row(tenants, "globex/batch/etl")[1], System.Globalization.CultureInfo.InvariantCulture);
        int regretRows = tables[2].Length - 1;
        Assert.Equal(6, regretRows); // the fixture's 4 + 2 requests

        // More traffic, then the page's meta refresh (every 2 s) replaces the document with a newer rendering.
        await SendAsync(KeyB, 2);
        // A refresh requested while that traffic was still settling may show part of it: follow refreshes (each one a new
        // document) until one shows both requests, at most five.
        List<string[][]> after = [];
        double document = firstDocument;
        for (int refreshes = 0; refreshes < 5 && (after.Count < 3 || after[2].Length - 1 < regretRows + 2); refreshes++)
        {
            var refreshed = await page.RunAndWaitForResponseAsync(() => Task.CompletedTask,
                r => r.Url == url && r.Request.IsNavigationRequest, new PageRunAndWaitForResponseOptions { Timeout = 20_000 });
            Assert.Equal(200, refreshed.Status);
            (document, _, after) = await ReadTablesAsync(page);
        }

        Assert.NotEqual(firstDocument, document); // a new document (performance.timeOrigin), loaded by the refresh
        Assert.Equal(regretRows + 2, after[2].Length - 1);
        Assert.True(double.Parse(Row(after[1], "globex/batch/etl")[1], System.Globalization.CultureInfo.InvariantCulture) > globexBefore);
        string cells = string.Join('\n', after.SelectMany(t => t).SelectMany(r => r));
        Assert.DoesNotContain(KeyA, cells);
        Assert.DoesNotContain("status page line", cells);

        byte[] png = await page.ScreenshotAsync(new PageScreenshotOptions { FullPage = false });
        Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }, png[..4]);
        Assert.Equal(1200, (png[16] << 24) | (png[17] << 16) | (png[18] << 8) | png[19]); // IHDR: the viewport
        Assert.Equal(800, (png[20] << 24) | (png[21] << 16) | (png[22] << 8) | png[23]);
        Assert.True(png.Length > 10_000, $"screenshot only {png.Length} bytes");
        string keep = Environment.GetEnvironmentVariable("GATEWAY_STATUS_SCREENSHOT") ?? "";
        if (keep.Length > 0)
        {
            await File.WriteAllBytesAsync(keep, png);
        }

        output.WriteLine($"chromium {browser.Version}; screenshot {png.Length} bytes");
    }

    private async Task SendAsync(string key, int n)
    {
        var client = new ChatClient("llama3-8b", new ApiKeyCredential(key), new OpenAIClientOptions { Endpoint = new Uri(_gw.BaseAddress, "v1"), RetryPolicy = new ClientRetryPolicy(0) });
        string prompt = string.Join(' ', Enumerable.Range(0, 100).Select(i => $"{key.Length} status page line {i}"));
        for (int i = 0; i < n; i++)
        {
            await client.CompleteChatAsync([new UserChatMessage(prompt)], new ChatCompletionOptions { MaxOutputTokenCount = 6 });
        }
    }

    /// <summary>
    /// Every table of the page as rows of cell texts (header row first), with the document's title and identity
    /// (<c>performance.timeOrigin</c>, new for each load) read in the same script. The page replaces itself every 2 s: a
    /// read that a refresh interrupts ("execution context was destroyed") is read again from the new document.
    /// </summary>
    private static async Task<(double Document, string Title, List<string[][]> Tables)> ReadTablesAsync(IPage page)
    {
        for (int attempt = 1; ; attempt++)
        {
            try
            {
                await page.WaitForLoadStateAsync(LoadState.Load);
                var read = await page.EvaluateAsync<PageTables>(
                    "() => ({ document: performance.timeOrigin, title: document.title, tables: [...document.querySelectorAll('table')].map(t => [...t.rows].map(r => [...r.cells].map(c => c.innerText.trim()))) })");
                return (read.Document, read.Title, [.. read.Tables]);
            }
            catch (PlaywrightException e) when (attempt < 10 && (e.Message.Contains("context was destroyed", StringComparison.OrdinalIgnoreCase)
                || e.Message.Contains("navigat", StringComparison.OrdinalIgnoreCase)))
            {
            }
        }
    }

    private sealed class PageTables
    {
        public double Document { get; set; }

        public string Title { get; set; } = "";

        public string[][][] Tables { get; set; } = [];
    }

    private static string[] Row(string[][] table, string first) => Assert.Single(table, r => r[0] == first);
}
