using System.Net;
using Gateway.Auth;
using Gateway.Configuration;
using Gateway.Core.Routing;
using Gateway.Fleet;
using Gateway.Proxy;
using Gateway.Telemetry;
using Gateway.Usage;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Gateway.Hosting;

/// <summary>
/// Builds and runs the gateway. <see cref="Build"/> composes the web application from configuration (appsettings.json,
/// optional YAML file, environment, command line, then <c>overrides</c>); <see cref="StartAsync"/> starts one on its
/// configured address (tests use <c>http://127.0.0.1:0</c>) and reports the bound <see cref="BaseAddress"/>.
/// </summary>
public sealed partial class GatewayHost : IAsyncDisposable
{
    private GatewayHost(WebApplication app, Uri baseAddress, Uri? managementAddress)
    {
        App = app;
        BaseAddress = baseAddress;
        ManagementAddress = managementAddress;
    }

    /// <summary>The running application.</summary>
    public WebApplication App { get; }

    /// <summary>Bound address, e.g. <c>http://127.0.0.1:51234/</c>.</summary>
    public Uri BaseAddress { get; }

    /// <summary>Bound operator address (<c>/metrics</c>, <c>/status</c>) when <c>Gateway:ManagementListen</c> is set, else null.</summary>
    public Uri? ManagementAddress { get; }

    /// <summary>Services.</summary>
    public IServiceProvider Services => App.Services;

    /// <summary>The worker fleet.</summary>
    public WorkerRegistry Workers => App.Services.GetRequiredService<WorkerRegistry>();

    /// <summary>Usage store.</summary>
    public IUsageStore Usage => App.Services.GetRequiredService<IUsageStore>();

    /// <summary>Builds the application (not started).</summary>
    public static WebApplication Build(string[] args, IDictionary<string, string?>? overrides = null, Action<IServiceCollection>? configureServices = null)
    {
        // Content root = the app folder, so appsettings.json is found whatever the working directory (dotnet run).
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = args, ContentRootPath = AppContext.BaseDirectory });
        string? yaml = YamlPath(args) ?? Environment.GetEnvironmentVariable("GATEWAY_CONFIG");
        if (!string.IsNullOrEmpty(yaml))
        {
            builder.Configuration.AddYamlFile(yaml, reloadOnChange: true);
            // Environment and command line still win over the file.
            builder.Configuration.AddEnvironmentVariables();
            builder.Configuration.AddCommandLine(args);
        }

        if (overrides is not null)
        {
            builder.Configuration.AddInMemoryCollection(overrides);
        }

        var section = builder.Configuration.GetSection(GatewayOptions.SectionName);
        var options = section.Get<GatewayOptions>() ?? new GatewayOptions();
        var validation = new GatewayOptionsValidator().Validate(null, options);
        if (validation.Failed)
        {
            throw new OptionsValidationException(GatewayOptions.SectionName, typeof(GatewayOptions), validation.Failures);
        }

        builder.Services.Configure<GatewayOptions>(section);
        builder.Services.Configure<Gateway.Agents.AgentRetentionOptions>(builder.Configuration.GetSection(Gateway.Agents.AgentRetentionOptions.SectionName));
        builder.Services.AddSingleton<IValidateOptions<GatewayOptions>, GatewayOptionsValidator>();
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = options.Shutdown.DrainTimeout + TimeSpan.FromSeconds(5));
        builder.WebHost.ConfigureKestrel(k =>
        {
            var l = options.Limits;
            k.AddServerHeader = false;
            k.Limits.MaxRequestBodySize = Proxy.Pipeline.RequestBodyReader.HardBodyLimit(l.MaxBodyBytes); // the handler enforces MaxBodyBytes itself (413)
            k.Limits.MaxRequestHeadersTotalSize = l.MaxRequestHeadersTotalSize;
            k.Limits.MaxRequestHeaderCount = l.MaxRequestHeaderCount;
            k.Limits.MaxRequestLineSize = l.MaxRequestLineSize;
            k.Limits.MaxConcurrentConnections = l.MaxConcurrentConnections;
            k.Limits.RequestHeadersTimeout = l.RequestHeadersTimeout;
            k.Limits.KeepAliveTimeout = l.KeepAliveTimeout;
            k.Limits.MinRequestBodyDataRate = l.MinRequestBodyBytesPerSecond > 0 ? new(l.MinRequestBodyBytesPerSecond, l.MinDataRateGracePeriod) : null;
            k.Limits.MinResponseDataRate = l.MinResponseBytesPerSecond > 0 ? new(l.MinResponseBytesPerSecond, l.MinDataRateGracePeriod) : null;
            var listen = new Uri(options.Listen);
            k.Listen(ManagementListener.Address(listen), listen.Port);
            if (!string.IsNullOrEmpty(options.ManagementListen))
            {
                ManagementListener.Listen(k, new Uri(options.ManagementListen)); // bound second: GatewayHost.ManagementAddress
            }
        });

        AddGatewayServices(builder.Services, options);
        builder.Services.AddGatewayTelemetry(builder.Configuration);
        configureServices?.Invoke(builder.Services);

        var app = builder.Build();
        app.UseOpenAiShapedErrors();
        app.UseClientStallGuard(options.Limits.ClientStallTimeout);
        if (!string.IsNullOrEmpty(options.ManagementListen))
        {
            ManagementListener.UseSplit(app);
        }

        app.UseGatewayHttpMetrics();
        app.MapGatewayEndpoints();
        app.MapPrometheusMetrics();
        Status.StatusPage.MapStatusPage(app);
        var metrics = app.Services.GetRequiredService<GatewayMetrics>();
        var registry = app.Services.GetRequiredService<WorkerRegistry>();
        metrics.SetWorkerSource(() =>
        {
            var all = registry.All;
            var list = new List<WorkerTelemetry>(all.Count);
            foreach (var w in all)
            {
                list.Add(new WorkerTelemetry(w.Prefix, w.Info.InFlight, w.Info.KvUsage, w.CircuitOpen ? CircuitState.Open : CircuitState.Closed, w.Info.Draining));
            }

            return list;
        });
        metrics.SetActivePinsSource(() =>
        {
            long pins = 0;
            foreach (var w in registry.All)
            {
                pins += w.PinsActive;
            }

            return pins;
        });
        return app;
    }

    /// <summary>Registers the gateway's services.</summary>
    public static void AddGatewayServices(IServiceCollection services, GatewayOptions options)
    {
        services.TryAddSingletonTime();
        services.AddHttpForwarder();
        services.AddSingleton<ApiKeyAuthenticator>();
        services.AddSingleton<WorkerRegistry>();
        services.AddSingleton<ModelCatalog>();
        services.AddSingleton<InFlightTracker>();
        services.AddSingleton<IUsageStore, InMemoryUsageStore>();
        services.AddSingleton<IRoutingPolicy>(sp => RoutingPolicies.Create(options.Routing.Policy, new RoutingPolicyContext
        {
            Time = sp.GetRequiredService<TimeProvider>(),
            Seed = options.Routing.Seed,
            BlockSize = options.Routing.BlockSize,
        }));
        services.AddSingleton<KvEventSubscriptions>();
        services.AddHostedService(sp => sp.GetRequiredService<KvEventSubscriptions>());
        if (!string.IsNullOrWhiteSpace(options.State.Redis))
        {
            // One multiplexer per gateway host, shared by the state store, the quota ledger and the slot table.
            services.AddSingleton(sp =>
            {
                var mux = StackExchange.Redis.ConnectionMultiplexer.Connect(State.RedisConnection.ParseOptions(options.State.Redis));
                return new State.RedisConnection(mux, ownsMultiplexer: true)
                {
                    CommandObserver = sp.GetRequiredService<GatewayMetrics>().RecordRedisCommand,
                };
            });
            services.AddSingleton<StackExchange.Redis.IConnectionMultiplexer>(sp => sp.GetRequiredService<State.RedisConnection>().Multiplexer);
        }

        services.AddSingleton<Scheduling.GatewayScheduling>();
        services.AddSingleton<RecentRegret>();
        services.AddOptions<Gateway.Agents.AgentRetentionOptions>();
        services.AddSingleton<Gateway.Agents.AgentRetentionService>();
        AddRequestPipeline(services);
        services.AddSingleton<PassthroughHandler>();
        if (!string.IsNullOrWhiteSpace(options.State.Redis))
        {
            services.AddSingleton<Gateway.Responses.IResponseStore>(sp => new Gateway.Responses.RedisResponseStore(sp.GetRequiredService<State.RedisConnection>(), options.State.Prefix, options.Responses));
        }
        else
        {
            services.AddSingleton<Gateway.Responses.IResponseStore>(_ => new Gateway.Responses.InMemoryResponseStore(options.Responses));
        }
        services.AddHostedService<StartupReporter>();
        switch (options.Workers.Mode)
        {
            case WorkerDiscoveryMode.Static:
                services.AddHostedService<StaticWorkerDiscovery>();
                break;
            case WorkerDiscoveryMode.Dns:
                services.AddSingleton<DnsWorkerDiscovery>();
                services.AddHostedService(sp => sp.GetRequiredService<DnsWorkerDiscovery>());
                break;
            case WorkerDiscoveryMode.Kubernetes:
                services.AddSingleton<KubernetesWorkerDiscovery>();
                services.AddHostedService(sp => sp.GetRequiredService<KubernetesWorkerDiscovery>());
                break;
            case WorkerDiscoveryMode.Embedded:
                services.AddSingleton<EmbeddedWorkers>();
                services.AddHostedService(sp => sp.GetRequiredService<EmbeddedWorkers>());
                break;
        }

        services.AddSingleton<HealthProber>();
        services.AddHostedService(sp => sp.GetRequiredService<HealthProber>());
        services.AddHostedService<DrainOnShutdown>();
        services.AddSingleton<ConfigReloader>();
        services.AddHostedService(sp => sp.GetRequiredService<ConfigReloader>());
    }

    /// <summary>The request pipeline's stages (docs/architecture.md, "A request's path") and the handler that runs them.</summary>
    private static void AddRequestPipeline(IServiceCollection services)
    {
        services.AddSingleton<Proxy.Pipeline.RequestBodyReader>();
        services.AddSingleton<Proxy.Pipeline.PromptTokenizers>();
        services.AddSingleton<Proxy.Pipeline.WorkerConnections>();
        services.AddSingleton<Proxy.Pipeline.AttemptRetry>();
        services.AddSingleton<Proxy.Pipeline.RequestAdmission>();
        services.AddSingleton<Proxy.Pipeline.RequestPlanner>();
        services.AddSingleton<Proxy.Pipeline.FairQueueStage>();
        services.AddSingleton<Proxy.Pipeline.ForwardingStage>();
        services.AddSingleton<Proxy.Pipeline.FailureAnswer>();
        services.AddSingleton<Proxy.Pipeline.RequestSettlement>();
        services.AddSingleton<Proxy.Pipeline.RequestTelemetry>();
        services.AddSingleton<ProxyHandler>();
    }

    /// <summary>
    /// Builds and starts a gateway; with <paramref name="waitForReady"/> it first waits (bounded) until a worker is
    /// healthy and its models are known.
    /// </summary>
    public static async Task<GatewayHost> StartAsync(IDictionary<string, string?> settings, Action<IServiceCollection>? configureServices = null, bool waitForReady = true, CancellationToken ct = default, string? configFile = null)
    {
        var app = Build(configFile is null ? [] : ["--config", configFile], settings, configureServices);
        await app.StartAsync(ct).ConfigureAwait(false);
        var addresses = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses
            .Select(a => new Uri(a.Replace("[::]", "127.0.0.1", StringComparison.Ordinal) + "/")).ToList();
        bool management = !string.IsNullOrEmpty(app.Services.GetRequiredService<IOptions<GatewayOptions>>().Value.ManagementListen);
        var host = new GatewayHost(app, addresses[0], management && addresses.Count > 1 ? addresses[1] : null);
        if (waitForReady)
        {
            await host.WaitForReadyAsync(TimeSpan.FromSeconds(20), ct).ConfigureAwait(false);
        }

        return host;
    }

    /// <summary>Probes now and waits until at least one worker is eligible and the fleet's models are known.</summary>
    public async Task WaitForReadyAsync(TimeSpan timeout, CancellationToken ct = default)
    {
        var prober = Services.GetRequiredService<HealthProber>();
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        cts.CancelAfter(timeout);
        while (!(Workers.AnyEligible && Workers.Models.Count > 0))
        {
            cts.Token.ThrowIfCancellationRequested();
            await prober.ProbeAllAsync(cts.Token).ConfigureAwait(false);
            if (!(Workers.AnyEligible && Workers.Models.Count > 0))
            {
                await Task.Delay(50, cts.Token).ConfigureAwait(false);
            }
        }
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        try
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            await App.StopAsync(cts.Token).ConfigureAwait(false);
        }
        finally
        {
            await App.DisposeAsync().ConfigureAwait(false);
        }
    }

    private static string? YamlPath(string[] args)
    {
        for (int i = 0; i < args.Length - 1; i++)
        {
            if (args[i] == "--config")
            {
                return args[i + 1];
            }
        }

        return null;
    }

    /// <summary>Logs where the gateway listens and the demo key (the one key that is documented in plaintext).</summary>
    private sealed partial class StartupReporter(IServer server, IHostApplicationLifetime lifetime, ApiKeyAuthenticator auth, IOptions<GatewayOptions> options, ILogger<GatewayHost> logger) : IHostedService
    {
        public Task StartAsync(CancellationToken cancellationToken)
        {
            lifetime.ApplicationStarted.Register(() =>
            {
                var addresses = server.Features.Get<IServerAddressesFeature>()?.Addresses;
                Log.Started(logger, string.Join(", ", addresses ?? []), options.Value.Workers.Mode.ToString(), auth.KeyCount);
                var demo = options.Value.Auth.DemoKey;
                if (demo.Enabled)
                {
                    Log.DemoKey(logger, demo.Key, demo.Tenant);
                }

                if (auth.GeneratedSecret)
                {
                    Log.GeneratedSecret(logger);
                }
            });
            return Task.CompletedTask;
        }

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }

    /// <summary>
    /// Registered after the web server, so stopped before it: marks the gateway draining (readyz 503) as soon as
    /// shutdown begins. Kestrel then stops accepting and waits for in-flight requests up to HostOptions.ShutdownTimeout.
    /// </summary>
    private sealed partial class DrainOnShutdown(InFlightTracker inFlight, IHostApplicationLifetime lifetime, ILogger<GatewayHost> logger) : IHostedService
    {
        public Task StartAsync(CancellationToken cancellationToken)
        {
            lifetime.ApplicationStopping.Register(() =>
            {
                inFlight.Draining = true;
                Log.Draining(logger, inFlight.Count);
            });
            return Task.CompletedTask;
        }

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = EventIds.Started, Level = LogLevel.Information, Message = "Gateway listening on {Addresses} (workers: {Mode}, {Keys} API keys)")]
        public static partial void Started(ILogger logger, string addresses, string mode, int keys);

        // The demo key is public by design (README); no other key is ever logged.
        [LoggerMessage(EventId = EventIds.DemoKey, Level = LogLevel.Information, Message = "Demo API key: {Key} (tenant {Tenant})")]
        public static partial void DemoKey(ILogger logger, string key, string tenant);

        [LoggerMessage(EventId = EventIds.GeneratedSecret, Level = LogLevel.Warning, Message = "No Gateway:Auth:ServerSecret configured: using a random one for this process (configured key digests cannot match).")]
        public static partial void GeneratedSecret(ILogger logger);

        [LoggerMessage(EventId = EventIds.Draining, Level = LogLevel.Information, Message = "Shutting down: draining {InFlight} in-flight requests")]
        public static partial void Draining(ILogger logger, int inFlight);
    }
}

internal static class ServiceCollectionTimeExtensions
{
    public static void TryAddSingletonTime(this IServiceCollection services)
    {
        if (!services.Any(d => d.ServiceType == typeof(TimeProvider)))
        {
            services.AddSingleton(TimeProvider.System);
        }
    }
}
