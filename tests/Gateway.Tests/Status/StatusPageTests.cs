using System.ClientModel;
using System.ClientModel.Primitives;
using System.Diagnostics;
using System.Net;
using Gateway.Auth;
using Gateway.Hosting;
using Gateway.Tests.Infrastructure;
using OpenAI;
using OpenAI.Chat;

namespace Gateway.Tests.Status;

/// <summary>The read-only /status page: served by the gateway, no secrets, rendered by a real headless Chromium.</summary>
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
        var options = new ChatCompletionOptions { MaxOutputTokenCount = 6 };
        foreach (var (key, n) in new[] { (KeyA, 4), (KeyB, 2) })
        {
            var client = new ChatClient("llama3-8b", new ApiKeyCredential(key), new OpenAIClientOptions { Endpoint = new Uri(_gw.BaseAddress, "v1"), RetryPolicy = new ClientRetryPolicy(0) });
            string prompt = string.Join(' ', Enumerable.Range(0, 100).Select(i => $"{key.Length} status page line {i}"));
            for (int i = 0; i < n; i++)
            {
                await client.CompleteChatAsync([new UserChatMessage(prompt)], options);
            }
        }
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

    [Fact]
    public async Task Status_HeadlessChromium_RendersScreenshot()
    {
        string chromium = FindChromium() ?? throw new Xunit.Sdk.XunitException(
            "chromium is not installed: run tools/ensure-tools.sh (Debian package 'chromium') — this test needs a real browser.");
        string dir = Path.Combine(Path.GetTempPath(), "gw-status-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            string png = Path.Combine(dir, "status.png");
            var psi = new ProcessStartInfo(chromium)
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };
            foreach (var a in new[]
            {
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--user-data-dir=" + Path.Combine(dir, "profile"), "--screenshot=" + png,
                "--window-size=1200,800", new Uri(_gw.BaseAddress, "status").ToString(),
            })
            {
                psi.ArgumentList.Add(a);
            }

            using var p = Process.Start(psi)!;
            var stdout = p.StandardOutput.ReadToEndAsync();
            var stderr = p.StandardError.ReadToEndAsync();
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(90));
            try
            {
                await p.WaitForExitAsync(cts.Token);
            }
            catch (OperationCanceledException)
            {
                p.Kill(entireProcessTree: true);
                throw new Xunit.Sdk.XunitException("chromium did not finish within 90 s");
            }

            Assert.True(File.Exists(png), $"no screenshot; chromium exit {p.ExitCode}: {await stderr}");
            byte[] bytes = await File.ReadAllBytesAsync(png);
            Assert.True(bytes.Length > 10_000, $"screenshot only {bytes.Length} bytes");
            Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }, bytes[..4]);
            // IHDR width/height (big-endian) = the window size.
            Assert.Equal(1200, (bytes[16] << 24) | (bytes[17] << 16) | (bytes[18] << 8) | bytes[19]);
            Assert.Equal(800, (bytes[20] << 24) | (bytes[21] << 16) | (bytes[22] << 8) | bytes[23]);
            string keep = Environment.GetEnvironmentVariable("GATEWAY_STATUS_SCREENSHOT") ?? "";
            if (keep.Length > 0)
            {
                File.Copy(png, keep, overwrite: true);
            }

            output.WriteLine($"screenshot {bytes.Length} bytes; stdout: {await stdout}");
        }
        finally
        {
            try
            {
                Directory.Delete(dir, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    private static string? FindChromium()
    {
        foreach (var name in new[] { "chromium", "chromium-browser", "google-chrome" })
        {
            foreach (var d in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries))
            {
                var f = Path.Combine(d, name);
                if (File.Exists(f))
                {
                    return f;
                }
            }
        }

        return null;
    }
}
