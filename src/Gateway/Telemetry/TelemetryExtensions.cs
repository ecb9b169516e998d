using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;

namespace Gateway.Telemetry;

/// <summary>Registration of the gateway's telemetry and the <c>/metrics</c> endpoint.</summary>
public static class TelemetryExtensions
{
    /// <summary>
    /// Registers <see cref="PrometheusExporter"/>, <see cref="GatewayMetrics"/> and <see cref="GatewayTracerProvider"/>
    /// as singletons (started with the host), scoped to this app's <see cref="IMeterFactory"/>.
    /// </summary>
    public static IServiceCollection AddGatewayTelemetry(this IServiceCollection services, Action<GatewayTelemetryOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        var options = new GatewayTelemetryOptions();
        configure?.Invoke(options);
        services.AddMetrics();
        services.TryAddSingleton(options);
        services.TryAddSingleton(sp =>
        {
            var o = sp.GetRequiredService<GatewayTelemetryOptions>().Prometheus;
            o.MeterScope ??= sp.GetRequiredService<IMeterFactory>();
            return new PrometheusExporter(o);
        });
        services.TryAddSingleton(sp =>
        {
            sp.GetRequiredService<PrometheusExporter>(); // listen before the first measurement, whatever is resolved first
            return new GatewayMetrics(sp.GetRequiredService<IMeterFactory>(), sp.GetRequiredService<GatewayTelemetryOptions>().Metrics);
        });
        services.TryAddSingleton(sp => new GatewayTracerProvider(sp.GetRequiredService<GatewayTelemetryOptions>().Tracing));
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

    /// <summary>Maps <c>GET {pattern}</c> to the Prometheus text exposition (format 0.0.4).</summary>
    public static IEndpointConventionBuilder MapPrometheusMetrics(this IEndpointRouteBuilder endpoints, string pattern = "/metrics")
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        var exporter = endpoints.ServiceProvider.GetRequiredService<PrometheusExporter>(); // starts listening now
        return endpoints.MapGet(pattern, async context =>
        {
            string text = exporter.Collect();
            context.Response.ContentType = PrometheusText.ContentType;
            context.Response.Headers.CacheControl = "no-store";
            await context.Response.WriteAsync(text, context.RequestAborted).ConfigureAwait(false);
        });
    }

    /// <summary>Creates the exporter, metrics and tracer provider when the host starts (singletons are lazy).</summary>
    private sealed class TelemetryStartup(IServiceProvider services) : IHostedService
    {
        public Task StartAsync(CancellationToken cancellationToken)
        {
            services.GetRequiredService<PrometheusExporter>();
            services.GetRequiredService<GatewayMetrics>();
            services.GetRequiredService<GatewayTracerProvider>();
            return Task.CompletedTask;
        }

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }
}
