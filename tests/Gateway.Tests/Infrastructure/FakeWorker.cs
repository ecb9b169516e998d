using System.Collections.Concurrent;
using System.Net;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Gateway.Tests.Infrastructure;

/// <summary>How a fake worker answers inference requests.</summary>
public enum FakeMode
{
    Normal,
    Status500,
    Status429,
    DieMidStream,
    HangAfterFirstEvent,
}

/// <summary>A small OpenAI-compatible worker on a real Kestrel socket, with switchable failure modes.</summary>
public sealed class FakeWorker : IAsyncDisposable
{
    private readonly WebApplication _app;

    private FakeWorker(WebApplication app, Uri address)
    {
        _app = app;
        BaseAddress = address;
    }

    public Uri BaseAddress { get; }

    public string Url => BaseAddress.GetLeftPart(UriPartial.Authority);

    public volatile FakeMode Mode = FakeMode.Normal;

    public int StreamChunks { get; set; } = 5;

    public TimeSpan ChunkDelay { get; set; } = TimeSpan.FromMilliseconds(5);

    public ConcurrentQueue<(string Path, Dictionary<string, string> Headers, string Body)> Requests { get; } = new();

    public int InferenceCount => Volatile.Read(ref _inference);

    public int Aborted => Volatile.Read(ref _aborted);

    /// <summary>Inference requests being answered now.</summary>
    public int Running => Volatile.Read(ref _running);

    /// <summary>The most inference requests answered at once since start.</summary>
    public int MaxRunning => Volatile.Read(ref _maxRunning);

    public TaskCompletionSource AbortSeen { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private int _inference;
    private int _aborted;
    private int _running;
    private int _maxRunning;

    public static async Task<FakeWorker> StartAsync(string model = "llama3-8b")
    {
        var b = WebApplication.CreateSlimBuilder();
        b.Logging.ClearProviders();
        b.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0));
        var app = b.Build();
        FakeWorker? self = null;
        app.MapGet("/v1/models", () => Results.Json(new { @object = "list", data = new[] { new { id = model, @object = "model", created = 0, owned_by = "fake" } } }));
        app.MapGet("/healthz", () => "ok");
        app.MapGet("/worker/state", () => Results.Json(new { model, waiting_requests = 0, running_requests = 0, kv_blocks_total = 1000, kv_blocks_used = 10, kv_blocks_free = 990, kv_eviction_age_s = 12.5, prefill_tokens_per_second = 20000.0, decode_step_seconds = 0.01, kv_event_seq = 0 }));
        app.MapPost("/v1/chat/completions", ctx => self!.HandleAsync(ctx, "chat"));
        app.MapPost("/v1/completions", ctx => self!.HandleAsync(ctx, "completion"));
        app.MapPost("/v1/embeddings", ctx => self!.HandleAsync(ctx, "embedding"));
        app.MapPost("/v1/rerank", async ctx =>
        {
            // An endpoint the gateway does not know (vLLM's rerank): recorded and answered with what it received.
            using var sr = new StreamReader(ctx.Request.Body, Encoding.UTF8);
            string body = await sr.ReadToEndAsync();
            self!.Requests.Enqueue((ctx.Request.Path, ctx.Request.Headers.ToDictionary(h => h.Key.ToLowerInvariant(), h => h.Value.ToString()), body));
            await ctx.Response.WriteAsJsonAsync(new { @object = "rerank", served_by = model, results = new[] { new { index = 0, relevance_score = 0.9 } } });
        });
        await app.StartAsync();
        var addr = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        self = new FakeWorker(app, new Uri(addr));
        return self;
    }

    public Task StopAsync() => _app.StopAsync();

    public async ValueTask DisposeAsync()
    {
        try
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            await _app.StopAsync(cts.Token);
        }
        catch (ObjectDisposedException)
        {
        }

        await _app.DisposeAsync();
    }

    private async Task HandleAsync(HttpContext ctx, string kind)
    {
        int now = Interlocked.Increment(ref _running);
        for (int seen = Volatile.Read(ref _maxRunning); now > seen && Interlocked.CompareExchange(ref _maxRunning, now, seen) != seen; seen = Volatile.Read(ref _maxRunning))
        {
        }

        try
        {
            await HandleCoreAsync(ctx, kind);
        }
        finally
        {
            Interlocked.Decrement(ref _running);
        }
    }

    private async Task HandleCoreAsync(HttpContext ctx, string kind)
    {
        Interlocked.Increment(ref _inference);
        string body;
        using (var sr = new StreamReader(ctx.Request.Body, Encoding.UTF8))
        {
            body = await sr.ReadToEndAsync();
        }

        var headers = ctx.Request.Headers.ToDictionary(h => h.Key.ToLowerInvariant(), h => h.Value.ToString());
        Requests.Enqueue((ctx.Request.Path, headers, body));
        switch (Mode)
        {
            case FakeMode.Status500:
                ctx.Response.StatusCode = 500;
                await ctx.Response.WriteAsync("{\"error\":{\"message\":\"boom\",\"type\":\"server_error\"}}");
                return;
            case FakeMode.Status429:
                ctx.Response.StatusCode = 429;
                ctx.Response.Headers.RetryAfter = "2";
                await ctx.Response.WriteAsync("{\"error\":{\"message\":\"busy\",\"type\":\"rate_limit_error\"}}");
                return;
        }

        using var doc = JsonDocument.Parse(body);
        var root = doc.RootElement;
        bool stream = root.TryGetProperty("stream", out var s) && s.ValueKind == JsonValueKind.True;
        bool includeUsage = root.TryGetProperty("stream_options", out var so) && so.TryGetProperty("include_usage", out var iu) && iu.ValueKind == JsonValueKind.True;
        string? tool = root.TryGetProperty("tools", out var tools) && tools.ValueKind == JsonValueKind.Array && tools.GetArrayLength() > 0
            ? tools[0].GetProperty("function").GetProperty("name").GetString() : null;
        string model = root.GetProperty("model").GetString()!;

        if (kind == "embedding")
        {
            await ctx.Response.WriteAsJsonAsync(new
            {
                @object = "list",
                model,
                data = new[] { new { @object = "embedding", index = 0, embedding = new[] { 0.1f, 0.2f, 0.3f } } },
                usage = new { prompt_tokens = 4, total_tokens = 4 },
            });
            return;
        }

        if (!stream)
        {
            object message = tool is null
                ? new { role = "assistant", content = "Hello from fake" }
                : new { role = "assistant", content = (string?)null, tool_calls = new[] { new { id = "call_1", type = "function", function = new { name = tool, arguments = "{\"q\":\"x\"}" } } } };
            object choice = kind == "chat"
                ? new { index = 0, message, finish_reason = tool is null ? "stop" : "tool_calls" }
                : new { index = 0, text = "Hello from fake", finish_reason = "stop" };
            await ctx.Response.WriteAsJsonAsync(new
            {
                id = "x1",
                @object = kind == "chat" ? "chat.completion" : "text_completion",
                created = 1,
                model,
                choices = new[] { choice },
                usage = new { prompt_tokens = 10, completion_tokens = 5, total_tokens = 15, prompt_tokens_details = new { cached_tokens = 3 } },
            });
            return;
        }

        ctx.Response.ContentType = "text/event-stream";
        await ctx.Response.Body.FlushAsync();
        try
        {
            for (int i = 0; i < StreamChunks; i++)
            {
                if (i > 0)
                {
                    await Task.Delay(ChunkDelay, ctx.RequestAborted);
                }

                if (Mode == FakeMode.DieMidStream && i == 2)
                {
                    ctx.Abort();
                    return;
                }

                if (Mode == FakeMode.HangAfterFirstEvent && i == 1)
                {
                    await Task.Delay(Timeout.Infinite, ctx.RequestAborted);
                }

                string delta = i == 0 && tool is not null
                    ? $"{{\"role\":\"assistant\",\"tool_calls\":[{{\"index\":0,\"id\":\"call_1\",\"type\":\"function\",\"function\":{{\"name\":\"{tool}\",\"arguments\":\"{{\\\"q\\\":\\\"x\\\"}}\"}}}}]}}"
                    : $"{{\"content\":\"tok{i} \"}}";
                string finish = i == StreamChunks - 1 ? (tool is null ? "\"stop\"" : "\"tool_calls\"") : "null";
                string chunk = kind == "chat"
                    ? $"{{\"id\":\"x1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"{model}\",\"choices\":[{{\"index\":0,\"delta\":{delta},\"finish_reason\":{finish}}}]}}"
                    : $"{{\"id\":\"x1\",\"object\":\"text_completion\",\"created\":1,\"model\":\"{model}\",\"choices\":[{{\"index\":0,\"text\":\"tok{i} \",\"finish_reason\":{finish}}}]}}";
                await ctx.Response.WriteAsync("data: " + chunk + "\n\n", ctx.RequestAborted);
                await ctx.Response.Body.FlushAsync(ctx.RequestAborted);
            }

            if (includeUsage)
            {
                await ctx.Response.WriteAsync($"data: {{\"id\":\"x1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"{model}\",\"choices\":[],\"usage\":{{\"prompt_tokens\":10,\"completion_tokens\":{StreamChunks},\"total_tokens\":{10 + StreamChunks},\"prompt_tokens_details\":{{\"cached_tokens\":3}}}}}}\n\n", ctx.RequestAborted);
            }

            await ctx.Response.WriteAsync("data: [DONE]\n\n", ctx.RequestAborted);
        }
        catch (OperationCanceledException) when (ctx.RequestAborted.IsCancellationRequested)
        {
            Interlocked.Increment(ref _aborted);
            AbortSeen.TrySetResult();
        }
    }
}
