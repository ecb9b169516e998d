namespace Gateway.Telemetry;

/// <summary>
/// Knobs of <see cref="PrometheusExporter"/>. Bindable from configuration section
/// <c>Gateway:Telemetry:Prometheus</c> (see docs/operations.md).
/// </summary>
public sealed class PrometheusExporterOptions
{
    /// <summary>Meters whose name starts with one of these (ordinal) are exported.</summary>
    public string[] MeterPrefixes { get; set; } =
    [
        GatewayMetrics.MeterName,
        "Microsoft.AspNetCore.Hosting",
        "Microsoft.AspNetCore.Server.Kestrel",
        "System.Net.Http",
        "System.Runtime",
    ];

    /// <summary>
    /// Most distinct label sets kept per instrument. Measurements with a new label set beyond this go to one
    /// overflow series whose labels all read <c>other</c>; the exporter's memory is therefore bounded by
    /// <see cref="MaxInstruments"/> x (this + 1) series.
    /// </summary>
    public int MaxSeriesPerInstrument { get; set; } = 500;

    /// <summary>Most instruments tracked at once; instruments published beyond this are ignored.</summary>
    public int MaxInstruments { get; set; } = 1000;

    /// <summary>
    /// Histogram bucket upper bounds (seconds) for time-valued histograms (unit s, ms, us, ns) that carry no
    /// bucket advice of their own. Spans 1 ms .. 5 min: LLM time-to-first-token and end-to-end latencies.
    /// </summary>
    public double[] LatencyBucketsSeconds { get; set; } =
        [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300];

    /// <summary>Bucket upper bounds for other histograms (tokens, bytes, counts) without advice: powers of 4.</summary>
    public double[] DefaultBuckets { get; set; } =
        [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576];

    /// <summary>
    /// When set, only meters whose <see cref="System.Diagnostics.Metrics.Meter.Scope"/> is this object or null are
    /// exported. <c>AddGatewayTelemetry</c> sets it to the app's <c>IMeterFactory</c> so that two hosts in one
    /// process (tests, in-process workers) do not export each other's request metrics.
    /// </summary>
    public object? MeterScope { get; set; }
}
