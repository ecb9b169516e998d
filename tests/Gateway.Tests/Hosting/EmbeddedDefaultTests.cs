using System.ClientModel;
using Gateway.Hosting;
using Gateway.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using OpenAI;
using OpenAI.Chat;

namespace Gateway.Tests.Hosting;

/// <summary>The embedded default: in-process reference workers (WorkerHost) behind the gateway, real engines.</summary>
public sealed class EmbeddedDefaultTests : IAsyncLifetime
{
    private GatewayHost _gw = null!;

    public async Task InitializeAsync()
    {
        _gw = await GatewayHost.StartAsync(new Dictionary<string, string?>
        {
            ["Gateway:Listen"] = "http://127.0.0.1:0",
            ["Gateway:Workers:Mode"] = "Embedded",
            ["Gateway:Workers:Embedded:Count"] = "2",
            ["Gateway:Workers:Embedded:TimeScale"] = "0.2",
            ["Logging:LogLevel:Default"] = "Warning",
        });
    }

    public async Task DisposeAsync() => await _gw.DisposeAsync();

    private IReadOnlyList<Worker.WorkerHost> Hosts => _gw.Services.GetRequiredService<EmbeddedWorkers>().Hosts;

    [Fact]
    public async Task EmbeddedDefault_DemoKey_ChatAndStreamThroughRealWorkers()
    {
        Assert.Equal(2, Hosts.Count);
        var client = new ChatClient("llama3-8b", new ApiKeyCredential(TestGateway.DemoKey), new OpenAIClientOptions { Endpoint = new Uri(_gw.BaseAddress, "v1") });
        var options = new ChatCompletionOptions { MaxOutputTokenCount = 8 };
        ChatCompletion c = await client.CompleteChatAsync([new UserChatMessage("hello there, how are you today?")], options);
        Assert.Equal(8, c.Usage.OutputTokenCount);
        int chunks = 0;
        await foreach (var u in client.CompleteChatStreamingAsync([new UserChatMessage("stream please")], options))
        {
            chunks += u.ContentUpdate.Count;
        }

        Assert.True(chunks >= 1);
        var usage = _gw.Usage.Get("demo/default/demo-key");
        Assert.Equal(2, usage.Requests);
        Assert.Equal(16, usage.CompletionTokens);
    }

    [Fact]
    public async Task Stream_ClientCancels_WorkerAbortsAndFreesBlocks()
    {
        using var http = TestGateway.Client(_gw);
        string prompt = string.Join(' ', Enumerable.Repeat("a fairly long prompt so that it spans several KV blocks", 20));
        var req = Sse.ChatStream($"{{\"model\":\"llama3-8b\",\"stream\":true,\"max_tokens\":4000,\"messages\":[{{\"role\":\"user\",\"content\":\"{prompt}\"}}]}}");
        var resp = await http.SendAsync(req, HttpCompletionOption.ResponseHeadersRead);
        var stream = await resp.Content.ReadAsStreamAsync();
        var buf = new byte[512];
        Assert.True(await stream.ReadAsync(buf) > 0);
        // While streaming, one engine runs the sequence and holds its blocks.
        Assert.Contains(Hosts, h => h.GetEngineState() is { RunningRequests: 1, KvBlocksUsed: > 0 });
        resp.Dispose();
        bool released = false;
        for (int i = 0; i < 200 && !released; i++)
        {
            await Task.Delay(25);
            released = Hosts.All(h => h.GetEngineState() is { RunningRequests: 0, WaitingRequests: 0, KvBlocksUsed: 0 });
        }

        Assert.True(released, "the worker aborted the sequence and freed its blocks");
        for (int i = 0; i < 200 && _gw.Workers.All.Sum(w => w.Info.InFlight) != 0; i++)
        {
            await Task.Delay(25);
        }

        Assert.Equal(0, _gw.Workers.All.Sum(w => w.Info.InFlight)); // the gateway's load charge is released too
    }
}
