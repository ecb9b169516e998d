namespace Gateway.Telemetry;

/// <summary>
/// Telemetry configuration (section <c>Gateway:Telemetry</c>; env vars <c>Gateway__Telemetry__Tracing__OtlpEndpoint</c> …).
/// </summary>
public sealed class GatewayTelemetryOptions
{
    /// <summary>Configuration section bound by <c>AddGatewayTelemetry(IConfiguration, …)</c>.</summary>
    public const string SectionName = "Gateway:Telemetry";

    /// <summary>Gateway instrument knobs.</summary>
    public GatewayMetricsOptions Metrics { get; set; } = new();

    /// <summary>Tracing knobs.</summary>
    public TracingOptions Tracing { get; set; } = new();
}

/// <summary>OpenTelemetry tracing options.</summary>
public sealed class TracingOptions
{
    /// <summary>
    /// Register the OpenTelemetry tracer provider (<c>services.AddOpenTelemetry()</c>) at all. On by default so that request spans exist and W3C trace context is propagated
    /// to workers; with no <see cref="OtlpEndpoint"/> nothing is exported.
    /// </summary>
    public bool Enabled { get; set; } = true;

    /// <summary>OTLP collector endpoint (e.g. <c>http://otel-collector:4317</c>); null or empty: OTLP export off (default).</summary>
    public string? OtlpEndpoint { get; set; }

    /// <summary><c>grpc</c> (default, port 4317) or <c>http/protobuf</c> (port 4318, path /v1/traces).</summary>
    public string OtlpProtocol { get; set; } = "grpc";

    /// <summary>service.name resource attribute.</summary>
    public string ServiceName { get; set; } = "llm-gateway";

    /// <summary>Head sampling ratio for new traces (parent-based: a sampled caller's trace is always kept).</summary>
    public double SampleRatio { get; set; } = 1.0;

    /// <summary>ActivitySources listened to (the ASP.NET Core and HttpClient instrumentations add theirs in any case).</summary>
    public string[] Sources { get; set; } = [.. GatewayTracing.DefaultSources];

    /// <summary>Extra configuration (tests add an in-memory exporter here). Not bindable.</summary>
    public Action<OpenTelemetry.Trace.TracerProviderBuilder>? Configure { get; set; }
}
