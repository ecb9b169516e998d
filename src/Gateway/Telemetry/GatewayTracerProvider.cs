using OpenTelemetry;
using OpenTelemetry.Exporter;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace Gateway.Telemetry;

/// <summary>
/// Builds the process's OpenTelemetry <see cref="TracerProvider"/> with <c>Sdk.CreateTracerProviderBuilder()</c>
/// (the hosting/instrumentation packages are not available here: ASP.NET Core and HttpClient emit activities
/// natively on the "Microsoft.AspNetCore" and "System.Net.Http" sources). Owns it; disposing flushes the exporter.
/// </summary>
public sealed class GatewayTracerProvider : IDisposable
{
    /// <summary>Builds the provider from <paramref name="options"/>; <see cref="Provider"/> is null when tracing is disabled.</summary>
    public GatewayTracerProvider(TracingOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        Provider = options.Enabled ? Build(options) : null;
    }

    /// <summary>The provider, or null when tracing is disabled.</summary>
    public TracerProvider? Provider { get; }

    /// <summary>Creates a provider: sources, resource, parent-based ratio sampler, optional OTLP exporter.</summary>
    public static TracerProvider Build(TracingOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var builder = Sdk.CreateTracerProviderBuilder()
            .SetResourceBuilder(ResourceBuilder.CreateDefault().AddService(options.ServiceName,
                serviceVersion: typeof(GatewayTracerProvider).Assembly.GetName().Version?.ToString()))
            .AddSource(options.Sources)
            .SetSampler(RootSampler(options));
        if (!string.IsNullOrWhiteSpace(options.OtlpEndpoint))
        {
            var endpoint = new Uri(options.OtlpEndpoint);
            bool http = string.Equals(options.OtlpProtocol, "http/protobuf", StringComparison.OrdinalIgnoreCase);
            builder.AddOtlpExporter(o =>
            {
                o.Protocol = http ? OtlpExportProtocol.HttpProtobuf : OtlpExportProtocol.Grpc;
                o.Endpoint = http && endpoint.AbsolutePath is "/" or "" ? new Uri(endpoint, "v1/traces") : endpoint;
            });
        }
        options.Configure?.Invoke(builder);
        return builder.Build()!;
    }

    /// <summary>
    /// Parent-based: a caller's sampled trace is always recorded (and its flag passed on to the workers). New traces are
    /// sampled at <see cref="TracingOptions.SampleRatio"/> when something exports spans (an OTLP endpoint or a
    /// <see cref="TracingOptions.Configure"/> hook); with no exporter they are created for propagation only: the workers
    /// still get a W3C <c>traceparent</c> (flag 00) and logs a trace id, but no span is recorded or tagged for nobody
    /// (that recording was ~10% of the gateway's CPU per small request, docs/benchmarks.md).
    /// </summary>
    public static Sampler RootSampler(TracingOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        bool exports = !string.IsNullOrWhiteSpace(options.OtlpEndpoint) || options.Configure is not null;
        return new ParentBasedSampler(exports ? new TraceIdRatioBasedSampler(Math.Clamp(options.SampleRatio, 0, 1)) : new AlwaysOffSampler());
    }

    /// <summary>Flushes and shuts the provider down.</summary>
    public void Dispose() => Provider?.Dispose();
}
