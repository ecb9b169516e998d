using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.Hosting;

public sealed class GracefulShutdownTests
{
    [Fact]
    public async Task Stop_StreamInFlight_StreamFinishesAndNewConnectionsRefused()
    {
        await using var w = await FakeWorker.StartAsync();
        w.StreamChunks = 10;
        w.ChunkDelay = TimeSpan.FromMilliseconds(100);
        await using var gw = await TestGateway.StartAsync([w.Url], new Dictionary<string, string?> { ["Gateway:Shutdown:DrainTimeout"] = "00:00:20" });
        using var http = TestGateway.Client(gw);
        using var resp = await http.SendAsync(Sse.ChatStream("{\"model\":\"llama3-8b\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"), HttpCompletionOption.ResponseHeadersRead);
        var reading = Sse.ReadAllAsync(resp);
        await Task.Delay(150);
        var stopping = gw.App.StopAsync();
        await Task.Delay(100);
        using (var fresh = TestGateway.Client(gw))
        {
            await Assert.ThrowsAnyAsync<HttpRequestException>(() => fresh.GetAsync("healthz"));
        }

        var events = await reading;
        Assert.Equal(11, events.Count); // all 10 chunks and [DONE]: the drain let the stream finish
        Assert.Equal("[DONE]", events[^1].Data);
        await stopping;
    }
}
