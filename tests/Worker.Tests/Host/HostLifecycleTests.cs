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
        string body = TestWorkers.ChatBody("a long answer please", 20_000, stream: true);
        using var gen = await http.SendAsync(
            new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = new StringContent(body, Encoding.UTF8, "application/json") },
            HttpCompletionOption.ResponseHeadersRead, cts.Token);
        var reader = new StreamReader(await gen.Content.ReadAsStreamAsync(cts.Token));
        Assert.StartsWith("data: ", await reader.ReadLineAsync(cts.Token), StringComparison.Ordinal);

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
}
