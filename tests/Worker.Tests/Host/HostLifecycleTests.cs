using System.Diagnostics;
using System.Text;

namespace Worker.Tests.Host;

public sealed class HostLifecycleTests
{
    [Fact]
    public async Task DisposeAsync_WithOpenStreams_EndsThemPromptly()
    {
        var host = await TestWorkers.StartAsync(timeScale: 1);
        using var http = TestWorkers.Http(host);
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var events = await SseReader.OpenAsync(http, "/worker/kv/events", cts.Token);
        var (gen, reader) = await OpenStreamAsync(http, 20_000, cts.Token);
        using var _ = gen;

        var sw = Stopwatch.StartNew();
        await host.DisposeAsync();
        sw.Stop();

        // Kestrel's own graceful-stop budget is 5 s; open streams must not use it up.
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(4), $"dispose took {sw.Elapsed}");
        string rest = await reader.ReadToEndAsync(cts.Token);
        Assert.Contains("worker_shutting_down", rest, StringComparison.Ordinal);
        await Assert.ThrowsAnyAsync<Exception>(async () =>
        {
            while (true)
            {
                await events.NextAsync(cts.Token);
            }
        });
        await events.DisposeAsync();
    }

    [Fact]
    public async Task StopAsync_WithOpenStream_FinishesTheStreamThenStops()
    {
        var host = await TestWorkers.StartAsync(timeScale: 1);
        using var http = TestWorkers.Http(host);
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var (gen, reader) = await OpenStreamAsync(http, 120, cts.Token);
        using var _ = gen;

        var stopping = host.StopAsync();
        Assert.True(host.Draining);
        string rest = await reader.ReadToEndAsync(cts.Token);
        await stopping;

        Assert.DoesNotContain("worker_shutting_down", rest, StringComparison.Ordinal);
        Assert.Contains("\"finish_reason\":\"length\"", rest, StringComparison.Ordinal);
        Assert.EndsWith("data: [DONE]", rest.TrimEnd(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Drain_NewRequestsGet503WithRetryAfter_StateSaysDraining_InFlightFinishes()
    {
        await using var host = await TestWorkers.StartAsync(timeScale: 1);
        using var http = TestWorkers.Http(host);
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var (gen, reader) = await OpenStreamAsync(http, 60, cts.Token);
        using var _ = gen;

        var (status, drained) = await TestWorkers.PostJsonAsync(http, "/worker/drain", "{}");
        Assert.Equal(200, status);
        Assert.True(drained.GetProperty("draining").GetBoolean());
        using (var ready = await http.GetAsync("/readyz", cts.Token))
        {
            Assert.Equal(System.Net.HttpStatusCode.ServiceUnavailable, ready.StatusCode);
        }

        using (var live = await http.GetAsync("/healthz", cts.Token))
        {
            Assert.Equal(System.Net.HttpStatusCode.OK, live.StatusCode); // draining is not dead
        }

        using var refused = await http.PostAsync("/v1/chat/completions",
            new StringContent(TestWorkers.ChatBody("second", 5), Encoding.UTF8, "application/json"), cts.Token);
        Assert.Equal(System.Net.HttpStatusCode.ServiceUnavailable, refused.StatusCode);
        Assert.Equal(TimeSpan.FromSeconds(1), refused.Headers.RetryAfter?.Delta);
        Assert.True(refused.Headers.Contains("x-worker-draining"));
        Assert.Contains("worker_draining", await refused.Content.ReadAsStringAsync(cts.Token), StringComparison.Ordinal);

        using var state = System.Text.Json.JsonDocument.Parse(await http.GetStringAsync("/worker/state", cts.Token));
        Assert.True(state.RootElement.GetProperty("draining").GetBoolean());

        string streamed = await reader.ReadToEndAsync(cts.Token);
        Assert.EndsWith("data: [DONE]", streamed.TrimEnd(), StringComparison.Ordinal);
    }

    /// <summary>Starts a streamed chat of <paramref name="maxTokens"/> tokens and reads its first event.</summary>
    private static async Task<(HttpResponseMessage Response, StreamReader Reader)> OpenStreamAsync(HttpClient http, int maxTokens, CancellationToken ct)
    {
        string body = TestWorkers.ChatBody("a long answer please", maxTokens, stream: true);
        var gen = await http.SendAsync(
            new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = new StringContent(body, Encoding.UTF8, "application/json") },
            HttpCompletionOption.ResponseHeadersRead, ct);
        var reader = new StreamReader(await gen.Content.ReadAsStreamAsync(ct));
        Assert.StartsWith("data: ", await reader.ReadLineAsync(ct), StringComparison.Ordinal);
        return (gen, reader);
    }
}
