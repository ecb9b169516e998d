using System.Diagnostics;
using System.Net.Http.Json;
using System.Text.Json;
using Gateway.Telemetry;
using Gateway.Tests.Deploy;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace Gateway.Tests.Telemetry;

/// <summary>
/// The exposition checked by the real Prometheus tools: <c>promtool check metrics</c> on what a Kestrel app serves
/// at /metrics, and a real Prometheus server scraping that app.
/// </summary>
public class PrometheusToolsTests
{
    private static Task<KestrelApp> StartMetricsAppAsync() =>
        KestrelApp.StartAsync(b => b.Services.AddGatewayTelemetry(o => o.Tracing.Enabled = false), app =>
        {
            app.MapPrometheusMetrics("/metrics");
            app.MapGet("/v1/models", () => Results.Ok(new { data = Array.Empty<object>() }));
        });

    private static async Task<string> ScrapeAfterTrafficAsync(KestrelApp app)
    {
        GatewayMetricsTests.RecordEverything(app.Services.GetRequiredService<GatewayMetrics>());
        using var http = new HttpClient { BaseAddress = app.Address };
        for (int i = 0; i < 3; i++) (await http.GetAsync(new Uri("v1/models", UriKind.Relative))).EnsureSuccessStatusCode();
        using var res = await http.GetAsync(new Uri("metrics", UriKind.Relative));
        res.EnsureSuccessStatusCode();
        Assert.Equal("text/plain; version=0.0.4; charset=utf-8", res.Content.Headers.ContentType?.ToString());
        return await res.Content.ReadAsStringAsync();
    }

    [Fact]
    public async Task Metrics_FromRunningKestrelApp_PassPromtoolCheckMetrics()
    {
        string promtool = RepoTools.Require("promtool");
        await using var app = await StartMetricsAppAsync();
        string text = await ScrapeAfterTrafficAsync(app);

        Assert.Contains("http_server_request_duration_seconds_bucket", text, StringComparison.Ordinal); // ASP.NET Core's own meter
        Assert.Contains(GatewayMetrics.Names.Requests, text, StringComparison.Ordinal);
        var r = RepoTools.Run(promtool, ["check", "metrics"], stdin: text);
        Assert.True(r.ExitCode == 0 && r.All.Trim().Length == 0, "promtool check metrics: " + RepoTools.Describe(r));
    }

    [Fact]
    public void Promtool_BrokenExposition_IsRejected()
    {
        // Guards the test above against a promtool that accepts anything.
        string promtool = RepoTools.Require("promtool");
        var r = RepoTools.Run(promtool, ["check", "metrics"], stdin: "# TYPE x counter\nx{a=\"1\" 1\n");
        Assert.NotEqual(0, r.ExitCode);
    }

    [Fact]
    public async Task PrometheusServer_ScrapesKestrelApp_SeriesQueryable()
    {
        string prometheus = RepoTools.Require("prometheus");
        await using var app = await StartMetricsAppAsync();
        await ScrapeAfterTrafficAsync(app);

        string dir = RepoTools.TempDir("prom-scrape");
        int port = RepoTools.FreeTcpPort();
        string target = $"127.0.0.1:{app.Address.Port}";
        File.WriteAllText(Path.Combine(dir, "prometheus.yml"), $"""
            global:
              scrape_interval: 1s
              scrape_timeout: 1s
            scrape_configs:
              - job_name: llm-gateway
                metrics_path: /metrics
                static_configs:
                  - targets: ["{target}"]
            """);
        var psi = new ProcessStartInfo(prometheus)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = dir,
        };
        foreach (var a in new[]
                 {
                     "--config.file=" + Path.Combine(dir, "prometheus.yml"), "--storage.tsdb.path=" + Path.Combine(dir, "data"),
                     $"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=1h",
                 })
            psi.ArgumentList.Add(a);
        using var server = Process.Start(psi)!;
        var log = new System.Text.StringBuilder();
        server.OutputDataReceived += (_, e) => { lock (log) log.AppendLine(e.Data); };
        server.ErrorDataReceived += (_, e) => { lock (log) log.AppendLine(e.Data); };
        server.BeginOutputReadLine();
        server.BeginErrorReadLine();
        try
        {
            using var api = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}/"), Timeout = TimeSpan.FromSeconds(5) };
            JsonElement? found = null;
            var deadline = Stopwatch.StartNew();
            while (deadline.Elapsed < TimeSpan.FromSeconds(60) && found is null && !server.HasExited)
            {
                await Task.Delay(500);
                try
                {
                    var doc = await api.GetFromJsonAsync<JsonElement>(
                        "api/v1/query?query=" + Uri.EscapeDataString($"{GatewayMetrics.Names.Requests}{{status=\"200\"}}"));
                    var result = doc.GetProperty("data").GetProperty("result");
                    if (result.GetArrayLength() > 0) found = result[0];
                }
                catch (HttpRequestException) { } // not listening yet
                catch (TaskCanceledException) { }
            }
            string serverLog;
            lock (log) serverLog = log.ToString();
            Assert.True(found is not null, $"no series after {deadline.Elapsed.TotalSeconds:F0}s; exited={server.HasExited}; log:\n{serverLog}");
            var metric = found!.Value.GetProperty("metric");
            Assert.Equal("acme/search", metric.GetProperty("tenant").GetString());
            Assert.Equal("llm-gateway", metric.GetProperty("job").GetString());
            Assert.Equal(target, metric.GetProperty("instance").GetString());
            Assert.Equal("1", found.Value.GetProperty("value")[1].GetString());

            // A histogram quantile, as the dashboard computes it, comes back as a number.
            var q = await api.GetFromJsonAsync<JsonElement>("api/v1/query?query=" + Uri.EscapeDataString(
                $"histogram_quantile(0.5, sum by (le) ({GatewayMetrics.Names.TimeToFirstToken}_bucket))"));
            var qr = q.GetProperty("data").GetProperty("result");
            Assert.Equal(1, qr.GetArrayLength());
            double p50 = double.Parse(qr[0].GetProperty("value")[1].GetString()!, System.Globalization.CultureInfo.InvariantCulture);
            Assert.InRange(p50, 0.1, 0.25); // the one 180 ms sample lies in the (0.1, 0.25] bucket

            var targets = await api.GetFromJsonAsync<JsonElement>("api/v1/targets");
            var active = targets.GetProperty("data").GetProperty("activeTargets");
            Assert.Equal("up", active[0].GetProperty("health").GetString());
        }
        finally
        {
            if (!server.HasExited) server.Kill(entireProcessTree: true);
            server.WaitForExit(10_000);
            try { Directory.Delete(dir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }
}
