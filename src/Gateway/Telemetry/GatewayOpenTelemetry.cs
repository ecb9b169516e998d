using OpenTelemetry;
using OpenTelemetry.Exporter;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace Gateway.Telemetry;

/// <summary>
/// The gateway's OpenTelemetry setup through the hosting package (<c>services.AddOpenTelemetry()</c>): the tracer
/// provider listening to the ASP.NET Core (server spans), HttpClient (client spans of YARP's forwarder to the workers)
/// and gateway (<see cref="GatewayTracing.Source"/>) sources, with the ASP.NET Core and HttpClient instrumentations
/// (HTTP attributes) when something exports (<see cref="Exports"/>); when an OTLP endpoint is set, an OTLP
/// trace exporter and a meter provider with the runtime, ASP.NET Core and HttpClient instruments exported the same
/// way. The providers start and stop with the host; <c>/metrics</c> stays with prometheus-net
/// (<see cref="GatewayMetrics"/>). The instrumentations' defaults keep secrets out of spans: no request or response
/// headers (so no <c>Authorization</c> / <c>x-api-key</c>), no bodies (so no prompts), query values redacted.
/// </summary>
public static class GatewayOpenTelemetry
{
    /// <summary>Registers the providers described by <paramref name="options"/>; nothing when tracing is disabled.</summary>
    public static IServiceCollection AddGatewayOpenTelemetry(this IServiceCollection services, TracingOptions options)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(options);
        if (!options.Enabled)
        {
            return services;
        }

        bool otlp = !string.IsNullOrWhiteSpace(options.OtlpEndpoint);
        var otel = services.AddOpenTelemetry()
            .ConfigureResource(r => r.AddService(options.ServiceName,
                serviceVersion: typeof(GatewayOpenTelemetry).Assembly.GetName().Version?.ToString()))
            .WithTracing(t =>
            {
                if (Exports(options))
                {
                    // The instrumentations add the HTTP attributes to spans someone reads. With nothing exporting they
                    // would only cost: their diagnostic-event handlers run for every request, and the HttpClient one
                    // writes the traceparent header a second time (docs/benchmarks.md). Propagation needs neither: the
                    // sources below are listened to, and HttpClient injects the client span's context itself.
                    t.AddAspNetCoreInstrumentation().AddHttpClientInstrumentation();
                }

                t.AddSource(options.Sources).SetSampler(RootSampler(options));
                if (otlp)
                {
                    t.AddOtlpExporter(o => Otlp(o, options, "v1/traces"));
                }

                options.Configure?.Invoke(t);
            });
        if (otlp)
        {
            otel.WithMetrics(m => m
                .AddRuntimeInstrumentation()
                .AddAspNetCoreInstrumentation()
                .AddHttpClientInstrumentation()
                .AddOtlpExporter((o, _) => Otlp(o, options, "v1/metrics")));
        }

        return services;
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
        return new ParentBasedSampler(Exports(options) ? new TraceIdRatioBasedSampler(Math.Clamp(options.SampleRatio, 0, 1)) : new AlwaysOffSampler());
    }

    /// <summary>Whether something exports spans: an OTLP endpoint or a <see cref="TracingOptions.Configure"/> hook.</summary>
    public static bool Exports(TracingOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return !string.IsNullOrWhiteSpace(options.OtlpEndpoint) || options.Configure is not null;
    }

    /// <summary>gRPC to the endpoint as given, or HTTP/protobuf with the signal's path added to a bare endpoint.</summary>
    private static void Otlp(OtlpExporterOptions o, TracingOptions options, string signalPath)
    {
        var endpoint = new Uri(options.OtlpEndpoint!);
        bool http = string.Equals(options.OtlpProtocol, "http/protobuf", StringComparison.OrdinalIgnoreCase);
        o.Protocol = http ? OtlpExportProtocol.HttpProtobuf : OtlpExportProtocol.Grpc;
        o.Endpoint = http && endpoint.AbsolutePath is "/" or "" ? new Uri(endpoint, signalPath) : endpoint;
    }
}
