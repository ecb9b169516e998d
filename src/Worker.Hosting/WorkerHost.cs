using System.Net;
using Llm.Prompt.OpenAi;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Worker.Backends;
using Worker.Engine;
using Worker.Hosting;
using Worker.Http;

namespace Worker;

/// <summary>
/// One reference worker hosted in-process: a Kestrel server bound to the options' URL (port 0 = ephemeral) serving
/// the OpenAI endpoints and the worker protocol over its own <see cref="LlmEngine"/> and engine loop. Several hosts
/// can run in one process (the gateway's embedded default starts four); each has its own engine, loop and port.
/// </summary>
public sealed class WorkerHost : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly EngineLoop _loop;
    private int _disposed;

    private WorkerHost(WebApplication app, EngineLoop loop, WorkerContext context, Uri baseAddress)
    {
        _app = app;
        _loop = loop;
        Context = context;
        BaseAddress = baseAddress;
    }

    /// <summary>Where the worker listens, e.g. <c>http://127.0.0.1:41234/</c> (the bound port when 0 was asked).</summary>
    public Uri BaseAddress { get; }

    /// <summary>
    /// The engine. It is not thread-safe and the worker's loop drives it: read it through <see cref="ReadEngine"/>
    /// (or <see cref="GetEngineState"/>) unless the host is idle.
    /// </summary>
    public LlmEngine Engine => _loop.Read(static e => e);

    /// <summary>The options the host runs with.</summary>
    public WorkerOptions Options => Context.Options;

    /// <summary>The model id this worker serves.</summary>
    public string ServedModel => Context.ServedModel;

    /// <summary>The roofline profile (for the cpu backend: the one calibrated at startup).</summary>
    public ModelProfile Profile => Context.Profile;

    internal WorkerContext Context { get; }

    /// <summary>Runs <paramref name="read"/> on the engine under the loop's lock.</summary>
    public T ReadEngine<T>(Func<LlmEngine, T> read) => _loop.Read(read);

    /// <summary>A consistent engine state snapshot (taken under the loop's lock).</summary>
    public EngineState GetEngineState() => _loop.Read(static e => e.GetState());

    /// <summary>Validates <paramref name="options"/>, builds the engine, binds Kestrel and starts serving.</summary>
    public static async Task<WorkerHost> StartAsync(WorkerOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        var errors = options.Validate();
        if (errors.Count > 0)
        {
            throw new ArgumentException("invalid worker options: " + string.Join("; ", errors), nameof(options));
        }

        ComputeBackend? cpu = options.Backend is "cpu" or "gpu"
            ? ComputeBackend.Load(options, options.ModelName ?? Path.GetFileNameWithoutExtension(options.ModelPath!))
            : null;
        var profile = cpu?.Profile ?? ModelProfiles.Get(options.Profile);
        var engineOptions = new EngineOptions
        {
            Profile = profile,
            KvBlocks = cpu?.KvBlocks ?? options.KvBlocks,
            HostKvBlocks = options.HostKvBlocks,
            BlockSize = options.BlockSize,
            MaxBatchTokens = options.MaxBatchTokens,
            LongPrefillTokenThreshold = options.LongPrefillTokenThreshold,
            LowPriorityPrefillTokens = options.LowPriorityPrefillTokens,
            MaxRunningSequences = options.MaxRunningSequences,
            MaxModelLength = cpu?.MaxModelLength ?? options.MaxModelLength,
            KvEventCapacity = options.KvEventCapacity,
            MaxPinnedFraction = options.MaxPinnedFraction,
        };
        var engine = cpu is null
            ? new LlmEngine(engineOptions, options.TimeProvider)
            : new LlmEngine(engineOptions, options.TimeProvider, cpu.Executor, engineOptions.EffectiveHostKvBlocks > 0 ? cpu.Executor.HostCopier : null);

        var (address, port) = ParseListen(options.Url);
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions
        {
            ApplicationName = typeof(WorkerHost).Assembly.GetName().Name,
            ContentRootPath = AppContext.BaseDirectory,
        });
        builder.Logging.ClearProviders();
        builder.Logging.SetMinimumLevel(options.LogLevel);
        builder.Logging.AddSimpleConsole(o => o.SingleLine = true);
        builder.WebHost.UseKestrel(k =>
        {
            k.AddServerHeader = false;
            k.Limits.MaxRequestBodySize = HttpJson.HardBodyLimit(options.MaxRequestBodyBytes);
            if (address is null)
            {
                k.ListenLocalhost(port);
            }
            else
            {
                k.Listen(address, port);
            }
        });

        builder.Services.Configure<Microsoft.Extensions.Hosting.HostOptions>(o => o.ShutdownTimeout = options.DrainTimeout + TimeSpan.FromSeconds(5));
        var app = builder.Build();
        // The cpu backend's steps take real time: the loop delivers their tokens at once instead of pacing.
        var loop = new EngineLoop(engine, options.TimeProvider, cpu is null ? options.TimeScale : 0);
        var context = new WorkerContext(options, profile, loop, cpu, engineOptions.MaxModelLength) { Stopping = app.Lifetime.ApplicationStopping };
        app.Lifetime.ApplicationStopping.Register(context.OnStopping);
        try
        {
            MapRoutes(app, context);
            await app.StartAsync(cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            await loop.DisposeAsync().ConfigureAwait(false);
            await app.DisposeAsync().ConfigureAwait(false);
            cpu?.Dispose();
            throw;
        }

        var bound = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses.FirstOrDefault()
            ?? options.Url;
        var uri = new Uri(bound.Replace("://[::]", "://127.0.0.1", StringComparison.Ordinal)
            .Replace("://0.0.0.0", "://127.0.0.1", StringComparison.Ordinal)
            .TrimEnd('/') + "/");
        return new WorkerHost(app, loop, context, uri);
    }

    /// <summary>Completes when the host stops (Ctrl+C in the standalone process, or <see cref="DisposeAsync"/>).</summary>
    public Task WaitForShutdownAsync(CancellationToken cancellationToken = default) => _app.WaitForShutdownAsync(cancellationToken);

    private static (IPAddress? Address, int Port) ParseListen(string url)
    {
        string u = url.Replace("://*", "://0.0.0.0", StringComparison.Ordinal).Replace("://+", "://0.0.0.0", StringComparison.Ordinal);
        if (!Uri.TryCreate(u, UriKind.Absolute, out var uri) || uri.Scheme != Uri.UriSchemeHttp)
        {
            throw new ArgumentException($"listen URL must be http://HOST:PORT, got '{url}'", nameof(url));
        }

        if (uri.IsLoopback && uri.Host == "localhost")
        {
            return (null, uri.Port);
        }

        if (!IPAddress.TryParse(uri.Host.Trim('[', ']'), out var ip))
        {
            throw new ArgumentException($"listen host must be an IP address or localhost, got '{uri.Host}'", nameof(url));
        }

        return (ip, uri.Port);
    }

    private static void MapRoutes(WebApplication app, WorkerContext context)
    {
        // Safety net: an exception no handler caught still answers in OpenAI shape, never an empty 500.
        app.UseExceptionHandler(new ExceptionHandlerOptions { ExceptionHandler = static ctx => HttpJson.WriteErrorAsync(ctx, HttpJson.Unhandled(ctx)) });
        var openai = new OpenAiHandlers(context);
        var protocol = new ProtocolHandlers(context);
        app.Map("/v1/chat/completions", ctx => openai.GenerateAsync(ctx, OpenAiEndpoint.ChatCompletions));
        app.Map("/v1/completions", ctx => openai.GenerateAsync(ctx, OpenAiEndpoint.Completions));
        app.Map("/v1/embeddings", openai.EmbeddingsAsync);
        app.Map("/v1/models", openai.ModelsAsync);
        app.Map("/v1/models/{**id}", ctx => openai.ModelAsync(ctx, (string)ctx.Request.RouteValues["id"]!));
        app.Map("/healthz", protocol.HealthAsync);
        app.Map("/readyz", protocol.ReadyAsync);
        app.Map("/worker/state", protocol.StateAsync);
        app.Map("/worker/drain", protocol.DrainAsync);
        app.Map("/worker/kv/events", protocol.EventsAsync);
        app.Map("/worker/kv/snapshot", protocol.SnapshotAsync);
        app.Map("/worker/kv/retain", protocol.RetainAsync);
        app.Map("/worker/kv/release", protocol.ReleaseAsync);
        app.Map("/worker/kv/prefetch", protocol.PrefetchAsync);
        app.MapFallback(ctx => HttpJson.WriteErrorAsync(ctx, HttpJson.UnknownRoute(ctx)));
    }

    /// <summary>True once the worker drains (see <see cref="BeginDrain"/>).</summary>
    public bool Draining => Context.Draining;

    /// <summary>Stops taking new generation requests (what <c>POST /worker/drain</c> does); in-flight ones run on.</summary>
    public void BeginDrain() => Context.BeginDrain();

    /// <summary>
    /// Graceful stop: new requests are refused, in-flight ones run to completion for up to
    /// <see cref="WorkerOptions.DrainTimeout"/> and are cut after it; then the engine loop stops. What SIGTERM does.
    /// </summary>
    public async Task StopAsync()
    {
        if (Volatile.Read(ref _disposed) != 0)
        {
            return;
        }

        using var cts = new CancellationTokenSource(Options.DrainTimeout + TimeSpan.FromSeconds(5));
        try
        {
            await _app.StopAsync(cts.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // forced stop after the drain timeout
        }

        await DisposeAsync().ConfigureAwait(false);
    }

    /// <summary>Stops the server at once (open streams are cut, as when a worker dies) and the engine loop.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        Context.CutNow();
        using (var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5)))
        {
            try
            {
                await _app.StopAsync(cts.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                // forced stop
            }
        }

        await _loop.DisposeAsync().ConfigureAwait(false);
        await _app.DisposeAsync().ConfigureAwait(false);
        Context.Compute?.Dispose();
    }
}
