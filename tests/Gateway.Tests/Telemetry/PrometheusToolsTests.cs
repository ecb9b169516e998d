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
            app.UseGatewayHttpMetrics();
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

        Assert.Contains("http_request_duration_seconds_bucket", text, StringComparison.Ordinal); // prometheus-net's HTTP metrics
        Assert.Contains("process_cpu_seconds_total", text, StringComparison.Ordinal); // and its process collector
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
        await using var app = await StartMetricsAppAsync();
        await ScrapeAfterTrafficAsync(app);
        await using var prom = await PrometheusServer.StartAsync(app.Address);

        var found = await prom.WaitForSeriesAsync($"{GatewayMetrics.Names.Requests}{{status=\"200\"}}");
        var metric = found.GetProperty("metric");
        Assert.Equal("acme/search", metric.GetProperty("tenant").GetString());
        Assert.Equal("llm-gateway", metric.GetProperty("job").GetString());
        Assert.Equal(prom.Target, metric.GetProperty("instance").GetString());
        Assert.Equal("1", found.GetProperty("value")[1].GetString());

        // A histogram quantile, as the dashboard computes it, comes back as a number.
        var qr = await prom.QueryAsync($"histogram_quantile(0.5, sum by (le) ({GatewayMetrics.Names.TimeToFirstToken}_bucket))");
        Assert.Equal(1, qr.GetArrayLength());
        double p50 = double.Parse(qr[0].GetProperty("value")[1].GetString()!, System.Globalization.CultureInfo.InvariantCulture);
        Assert.InRange(p50, 0.1, 0.25); // the one 180 ms sample lies in the (0.1, 0.25] bucket
        Assert.Equal("up", await prom.TargetHealthAsync());
    }

    [Fact]
    public async Task PrometheusServer_ScrapesRunningGateway_RequestAndWorkerSeries()
    {
        // The real gateway (embedded reference workers) serving real requests, scraped by a real Prometheus.
        await using var gw = await Gateway.Hosting.GatewayHost.StartAsync(new Dictionary<string, string?>
        {
            ["Gateway:Listen"] = "http://127.0.0.1:0",
            ["Gateway:Workers:Mode"] = "Embedded",
            ["Gateway:Workers:Embedded:Count"] = "2",
            ["Gateway:Workers:Embedded:TimeScale"] = "0.05",
            ["Logging:LogLevel:Default"] = "Warning",
        });
        using (var http = new HttpClient { BaseAddress = gw.BaseAddress, Timeout = TimeSpan.FromSeconds(30) })
        {
            http.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", "sk-demo-local-0000");
            for (int i = 0; i < 3; i++)
            {
                using var body = new StringContent("{\"model\":\"llama3-8b\",\"max_tokens\":4,\"messages\":[{\"role\":\"user\",\"content\":\"hello metrics\"}]}",
                    System.Text.Encoding.UTF8, "application/json");
                (await http.PostAsync(new Uri("v1/chat/completions", UriKind.Relative), body)).EnsureSuccessStatusCode();
            }
            string text = await http.GetStringAsync(new Uri("metrics", UriKind.Relative));
            Assert.DoesNotContain("sk-demo-local-0000", text, StringComparison.Ordinal);
            var check = RepoTools.Run(RepoTools.Require("promtool"), ["check", "metrics"], stdin: text);
            Assert.True(check.ExitCode == 0 && check.All.Trim().Length == 0, "promtool check metrics on the gateway: " + RepoTools.Describe(check));
        }
        await using var prom = await PrometheusServer.StartAsync(gw.BaseAddress);

        var requests = await prom.WaitForSeriesAsync($"{GatewayMetrics.Names.Requests}{{endpoint=~\".*chat.*\"}}");
        Assert.Equal("demo/default", requests.GetProperty("metric").GetProperty("tenant").GetString()); // org/team, never the key level
        Assert.Equal("200", requests.GetProperty("metric").GetProperty("status").GetString());
        Assert.Equal("3", requests.GetProperty("value")[1].GetString());
        var workers = await prom.QueryAsync(GatewayMetrics.Names.WorkerKvUsage);
        Assert.Equal(2, workers.GetArrayLength());
        Assert.Equal("up", await prom.TargetHealthAsync());
    }
}

/// <summary>A real Prometheus server (Debian package) scraping one target every second, in a temp dir; killed on dispose.</summary>
internal sealed class PrometheusServer : IAsyncDisposable
{
    private readonly Process _process;
    private readonly string _dir;
    private readonly System.Text.StringBuilder _log = new();
    private readonly HttpClient _api;

    private PrometheusServer(Process process, string dir, int port, string target)
    {
        _process = process;
        _dir = dir;
        Target = target;
        _api = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}/"), Timeout = TimeSpan.FromSeconds(5) };
        process.OutputDataReceived += (_, e) => { lock (_log) _log.AppendLine(e.Data); };
        process.ErrorDataReceived += (_, e) => { lock (_log) _log.AppendLine(e.Data); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
    }

    public string Target { get; }

    public static Task<PrometheusServer> StartAsync(Uri app)
    {
        string prometheus = RepoTools.Require("prometheus");
        string dir = RepoTools.TempDir("prom-scrape");
        int port = RepoTools.FreeTcpPort();
        string target = $"127.0.0.1:{app.Port}";
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
        return Task.FromResult(new PrometheusServer(Process.Start(psi)!, dir, port, target));
    }

    public async Task<JsonElement> QueryAsync(string promql)
    {
        var doc = await _api.GetFromJsonAsync<JsonElement>("api/v1/query?query=" + Uri.EscapeDataString(promql));
        return doc.GetProperty("data").GetProperty("result");
    }

    /// <summary>Polls (bounded: 60 s) until the query returns a series.</summary>
    public async Task<JsonElement> WaitForSeriesAsync(string promql)
    {
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < TimeSpan.FromSeconds(60) && !_process.HasExited)
        {
            await Task.Delay(500);
            try
            {
                var result = await QueryAsync(promql);
                if (result.GetArrayLength() > 0) return result[0];
            }
            catch (HttpRequestException) { } // not listening yet
            catch (TaskCanceledException) { }
        }
        string log;
        lock (_log) log = _log.ToString();
        throw new Xunit.Sdk.XunitException($"no series for {promql} after {sw.Elapsed.TotalSeconds:F0}s; exited={_process.HasExited}; log:\n{log}");
    }

    public async Task<string?> TargetHealthAsync()
    {
        var targets = await _api.GetFromJsonAsync<JsonElement>("api/v1/targets");
        return targets.GetProperty("data").GetProperty("activeTargets")[0].GetProperty("health").GetString();
    }

    public async ValueTask DisposeAsync()
    {
        _api.Dispose();
        if (!_process.HasExited) _process.Kill(entireProcessTree: true);
        await _process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10));
        _process.Dispose();
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
