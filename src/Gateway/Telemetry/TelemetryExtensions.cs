using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Prometheus;

namespace Gateway.Telemetry;

/// <summary>Registration of the gateway's telemetry and the <c>/metrics</c> endpoint.</summary>
public static class TelemetryExtensions
{
    /// <summary>
    /// Registers <see cref="GatewayMetrics"/> (this app's own prometheus-net registry, with the process and .NET runtime
    /// collectors of prometheus-net) as a singleton started with the host, and OpenTelemetry tracing
    /// (<see cref="GatewayOpenTelemetry.AddGatewayOpenTelemetry"/>).
    /// </summary>
    public static IServiceCollection AddGatewayTelemetry(this IServiceCollection services, Action<GatewayTelemetryOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        var options = new GatewayTelemetryOptions();
        configure?.Invoke(options);
        if (services.Any(d => d.ServiceType == typeof(GatewayTelemetryOptions)))
        {
            return services; // registered already: the first registration's options win
        }

        services.AddSingleton(options);
        services.TryAddSingleton(sp =>
        {
            var metrics = new GatewayMetrics(sp.GetRequiredService<GatewayTelemetryOptions>().Metrics);
            DotNetStats.Register(metrics.Registry); // process_* and dotnet_* series
            // Allocation rate per request is the benchmarks' cost figure (bench/PlainYarp/run-overhead.sh reads it).
            var allocated = metrics.Factory.CreateCounter("dotnet_gc_heap_total_allocated_bytes_total",
                "Bytes allocated on the managed heap since the process started (GC.GetTotalAllocatedBytes).");
            metrics.OnCollect(() => allocated.IncTo(GC.GetTotalAllocatedBytes()));
            return metrics;
        });
        services.AddGatewayOpenTelemetry(options.Tracing);
        services.AddHostedService<TelemetryStartup>();
        return services;
    }

    /// <summary>As <see cref="AddGatewayTelemetry(IServiceCollection, Action{GatewayTelemetryOptions})"/>, binding
    /// <see cref="GatewayTelemetryOptions.SectionName"/> from <paramref name="configuration"/> first.</summary>
    public static IServiceCollection AddGatewayTelemetry(this IServiceCollection services, IConfiguration configuration,
        Action<GatewayTelemetryOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        return services.AddGatewayTelemetry(o =>
        {
            configuration.GetSection(GatewayTelemetryOptions.SectionName).Bind(o);
            configure?.Invoke(o);
        });
    }

    /// <summary>Maps <c>GET {pattern}</c> to prometheus-net's exposition of this app's registry.</summary>
    public static IEndpointConventionBuilder MapPrometheusMetrics(this IEndpointRouteBuilder endpoints, string pattern = "/metrics")
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        var registry = endpoints.ServiceProvider.GetRequiredService<GatewayMetrics>().Registry;
        return endpoints.MapMetrics(pattern, registry);
    }

    /// <summary>
    /// prometheus-net's ASP.NET Core HTTP metrics (<c>http_requests_received_total</c>, <c>http_request_duration_seconds</c>,
    /// <c>http_requests_in_progress</c> by code, method and route) on this app's registry.
    /// </summary>
    public static IApplicationBuilder UseGatewayHttpMetrics(this IApplicationBuilder app)
    {
        ArgumentNullException.ThrowIfNull(app);
        var factory = app.ApplicationServices.GetRequiredService<GatewayMetrics>().Factory;
        return app.UseHttpMetrics(o => o.SetMetricFactory(factory));
    }

    /// <summary>Creates the metrics when the host starts (singletons are lazy).</summary>
    private sealed class TelemetryStartup(IServiceProvider services) : IHostedService
    {
        public Task StartAsync(CancellationToken cancellationToken)
        {
            services.GetRequiredService<GatewayMetrics>();
            return Task.CompletedTask;
        }

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }
}
