using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace LoadGen.Tests;

/// <summary>How the fake server answers one request.</summary>
public enum FakeBehavior
{
    /// <summary>SSE: first chunk after FirstDelay, then Chunks−1 more every Gap, a usage chunk, [DONE].</summary>
    Stream,

    /// <summary>503 with an OpenAI error body.</summary>
    Error503,

    /// <summary>Headers and one chunk, then the connection is aborted.</summary>
    DropMidStream,

    /// <summary>Accepts the request and never answers.</summary>
    Hang,

    /// <summary>Chunks, then the response ends without [DONE].</summary>
    EndWithoutDone,
}

/// <summary>A small OpenAI-compatible SSE server on 127.0.0.1 (Kestrel, ephemeral port) whose timing and failures the test sets.</summary>
public sealed class FakeOpenAiServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private int _inFlight;
    private int _maxInFlight;
    private int _requests;
    private int _completed;

    private FakeOpenAiServer(WebApplication app) => _app = app;

    /// <summary>Chooses the behaviour for the n-th request (0-based).</summary>
    public Func<int, FakeBehavior> Behavior { get; set; } = _ => FakeBehavior.Stream;

    /// <summary>Delay before the first content chunk.</summary>
    public TimeSpan FirstDelay { get; set; } = TimeSpan.FromMilliseconds(20);

    /// <summary>Delay between content chunks.</summary>
    public TimeSpan Gap { get; set; } = TimeSpan.FromMilliseconds(5);

    /// <summary>Content chunks per answer.</summary>
    public int Chunks { get; set; } = 4;

    /// <summary>cached_tokens reported in usage.</summary>
    public int CachedTokens { get; set; } = 7;

    /// <summary>Base address, e.g. http://127.0.0.1:PORT/.</summary>
    public Uri BaseAddress { get; private set; } = new("http://127.0.0.1/");

    /// <summary>Requests received.</summary>
    public int Requests => Volatile.Read(ref _requests);

    /// <summary>Streams answered to their end ([DONE] flushed).</summary>
    public int Completed => Volatile.Read(ref _completed);

    /// <summary>Most requests in flight at once.</summary>
    public int MaxInFlight => Volatile.Read(ref _maxInFlight);

    /// <summary>Bodies received (JSON), in arrival order.</summary>
    public List<JsonDocument> Bodies { get; } = [];

    /// <summary>Authorization headers received.</summary>
    public List<string> AuthHeaders { get; } = [];

    /// <summary>Starts a server.</summary>
    public static async Task<FakeOpenAiServer> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        var app = builder.Build();
        var server = new FakeOpenAiServer(app);
        app.MapGet("/v1/models", () => Results.Json(new { @object = "list", data = new[] { new { id = "fake-model", @object = "model" } } }));
        app.MapPost("/v1/chat/completions", server.HandleAsync);
        await app.StartAsync();
        server.BaseAddress = new Uri(app.Urls.First() + "/");
        return server;
    }

    /// <summary>Stops listening (in-flight connections are cut).</summary>
    public async Task StopAsync()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(200));
        await _app.StopAsync(cts.Token);
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        try
        {
            await StopAsync();
        }
        catch (OperationCanceledException)
        {
        }

        await _app.DisposeAsync();
        foreach (var b in Bodies)
        {
            b.Dispose();
        }
    }

    private async Task HandleAsync(HttpContext ctx)
    {
        int n = Interlocked.Increment(ref _requests) - 1;
        int now = Interlocked.Increment(ref _inFlight);
        int seen;
        while (now > (seen = Volatile.Read(ref _maxInFlight)) && Interlocked.CompareExchange(ref _maxInFlight, now, seen) != seen)
        {
        }

        try
        {
            var body = await JsonDocument.ParseAsync(ctx.Request.Body, cancellationToken: ctx.RequestAborted);
            lock (Bodies)
            {
                Bodies.Add(body);
                AuthHeaders.Add(ctx.Request.Headers.Authorization.ToString());
            }

            var ct = ctx.RequestAborted;
            switch (Behavior(n))
            {
                case FakeBehavior.Error503:
                    ctx.Response.StatusCode = 503;
                    await ctx.Response.WriteAsJsonAsync(new { error = new { message = "no worker", type = "server_error", param = (string?)null, code = "no_healthy_worker" } }, ct);
                    return;
                case FakeBehavior.Hang:
                    await Task.Delay(Timeout.Infinite, ct);
                    return;
            }

            ctx.Response.ContentType = "text/event-stream";
            await ctx.Response.Body.FlushAsync(ct);
            await Task.Delay(FirstDelay, ct);
            await Write(ctx, """{"id":"x","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}""");
            var behavior = Behavior(n);
            for (int i = 0; i < Chunks; i++)
            {
                if (i > 0)
                {
                    await Task.Delay(Gap, ct);
                }

                await Write(ctx, $$$"""{"id":"x","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"tok{{{i}}} "}}]}""");
                if (behavior == FakeBehavior.DropMidStream)
                {
                    ctx.Abort();
                    return;
                }
            }

            await Write(ctx, """{"id":"x","object":"chat.completion.chunk","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}""");
            if (behavior == FakeBehavior.EndWithoutDone)
            {
                return;
            }

            await Write(ctx, "{\"id\":\"x\",\"object\":\"chat.completion.chunk\",\"choices\":[],\"usage\":{\"prompt_tokens\":50,\"completion_tokens\":" + Chunks + ",\"total_tokens\":" + (50 + Chunks) + ",\"prompt_tokens_details\":{\"cached_tokens\":" + CachedTokens + "}}}");
            await ctx.Response.Body.WriteAsync("data: [DONE]\n\n"u8.ToArray(), ct);
            await ctx.Response.Body.FlushAsync(ct);
            Interlocked.Increment(ref _completed);
        }
        catch (OperationCanceledException)
        {
        }
        finally
        {
            Interlocked.Decrement(ref _inFlight);
        }
    }

    private static async Task Write(HttpContext ctx, string json)
    {
        await ctx.Response.Body.WriteAsync(Encoding.UTF8.GetBytes("data: " + json + "\n\n"), ctx.RequestAborted);
        await ctx.Response.Body.FlushAsync(ctx.RequestAborted);
    }
}
