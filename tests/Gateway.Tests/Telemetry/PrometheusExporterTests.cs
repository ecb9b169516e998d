using System.Diagnostics.Metrics;
using Gateway.Telemetry;

namespace Gateway.Tests.Telemetry;

public class PrometheusExporterTests
{
    private static (Meter Meter, PrometheusExporter Exporter) Create(int maxSeries = 500, int maxInstruments = 1000)
    {
        string name = "ExporterTest." + Guid.NewGuid().ToString("N");
        var meter = new Meter(name);
        var exporter = new PrometheusExporter(new PrometheusExporterOptions
        {
            MeterPrefixes = [name],
            MaxSeriesPerInstrument = maxSeries,
            MaxInstruments = maxInstruments,
        });
        return (meter, exporter);
    }

    [Fact]
    public void Collect_Counter_TotalSuffixHelpTypeAndSumPerLabelSet()
    {
        var (meter, exporter) = Create();
        using var _ = meter; using var __ = exporter;
        var c = meter.CreateCounter<long>("test.requests", "{request}", "Requests served.");
        c.Add(2, new KeyValuePair<string, object?>("status", 200), new KeyValuePair<string, object?>("tenant", "acme"));
        c.Add(3, new KeyValuePair<string, object?>("tenant", "acme"), new KeyValuePair<string, object?>("status", 200)); // other tag order, same series
        c.Add(1, new KeyValuePair<string, object?>("status", 500), new KeyValuePair<string, object?>("tenant", "acme"));
        c.Add(-7, new KeyValuePair<string, object?>("status", 500), new KeyValuePair<string, object?>("tenant", "acme")); // invalid for a counter

        var e = Exposition.Parse(exporter.Collect());

        Assert.Equal("counter", e.Types["test_requests_total"]);
        Assert.Equal("Requests served.", e.Help["test_requests_total"]);
        Assert.Equal(5, e.Value("test_requests_total", ("status", "200"), ("tenant", "acme")));
        Assert.Equal(1, e.Value("test_requests_total", ("status", "500")));
        Assert.Equal(2, e.Named("test_requests_total").Count());
    }

    [Fact]
    public void Collect_Histogram_CumulativeBucketsSumCountAndInf()
    {
        var (meter, exporter) = Create();
        using var _ = meter; using var __ = exporter;
        var h = meter.CreateHistogram<double>("test.latency", "s", "Latency.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.1, 1, 10] });
        foreach (double v in new[] { 0.05, 0.1, 0.5, 2, 50 }) h.Record(v);

        var e = Exposition.Parse(exporter.Collect());

        Assert.Equal("histogram", e.Types["test_latency_seconds"]);
        Assert.Equal(2, e.Value("test_latency_seconds_bucket", ("le", "0.1"))); // le is inclusive
        Assert.Equal(3, e.Value("test_latency_seconds_bucket", ("le", "1")));
        Assert.Equal(4, e.Value("test_latency_seconds_bucket", ("le", "10")));
        Assert.Equal(5, e.Value("test_latency_seconds_bucket", ("le", "+Inf")));
        Assert.Equal(5, e.Value("test_latency_seconds_count"));
        Assert.Equal(52.65, e.Value("test_latency_seconds_sum"), 9);
    }

    [Fact]
    public void Collect_MillisecondHistogram_ConvertedToSecondsWithLatencyBuckets()
    {
        var (meter, exporter) = Create();
        using var _ = meter; using var __ = exporter;
        var h = meter.CreateHistogram<double>("test.wait", "ms");
        h.Record(250); // 0.25 s
        h.Record(4000); // 4 s

        var e = Exposition.Parse(exporter.Collect());

        Assert.Equal(4.25, e.Value("test_wait_seconds_sum"), 9);
        Assert.Equal(1, e.Value("test_wait_seconds_bucket", ("le", "0.25")));
        Assert.Equal(1, e.Value("test_wait_seconds_bucket", ("le", "2.5")));
        Assert.Equal(2, e.Value("test_wait_seconds_bucket", ("le", "5")));
        Assert.Contains("exported in seconds", e.Help["test_wait_seconds"], StringComparison.Ordinal);
        var bounds = e.Named("test_wait_seconds_bucket").Select(s => s.Labels["le"]).ToList();
        Assert.Equal(new PrometheusExporterOptions().LatencyBucketsSeconds.Length + 1, bounds.Count);
    }

    [Fact]
    public void Collect_UpDownCounterAndGauges_GaugeType()
    {
        var (meter, exporter) = Create();
        using var _ = meter; using var __ = exporter;
        var active = meter.CreateUpDownCounter<int>("test.active", "{request}");
        active.Add(3); active.Add(-1);
        var g = meter.CreateGauge<double>("test.temperature", "Cel");
        g.Record(20); g.Record(21.5);
        int calls = 0;
        meter.CreateObservableGauge("test.queue.depth", () => new Measurement<long>(++calls * 10, new KeyValuePair<string, object?>("q", "a")));

        var e1 = Exposition.Parse(exporter.Collect());
        var e2 = Exposition.Parse(exporter.Collect());

        Assert.Equal("gauge", e1.Types["test_active"]);
        Assert.Equal(2, e1.Value("test_active"));
        Assert.Equal(21.5, e1.Value("test_temperature_Cel"));
        Assert.Equal(10, e1.Value("test_queue_depth", ("q", "a")));
        Assert.Equal(20, e2.Value("test_queue_depth", ("q", "a"))); // observed again at each scrape
    }

    [Fact]
    public void Collect_ObservableSeriesThatDisappear_AreNotReportedAgain()
    {
        var (meter, exporter) = Create();
        using var _ = meter; using var __ = exporter;
        var workers = new List<string> { "w0", "w1" };
        meter.CreateObservableGauge("test.worker.load", () => workers.Select(w => new Measurement<int>(1, new KeyValuePair<string, object?>("worker", w))).ToList());
        meter.CreateObservableCounter("test.worker.tokens", () => new Measurement<long>(42));

        Assert.Equal(2, Exposition.Parse(exporter.Collect()).Named("test_worker_load").Count());
        workers.Remove("w0");
        var e = Exposition.Parse(exporter.Collect());

        Assert.Equal("w1", Assert.Single(e.Named("test_worker_load")).Labels["worker"]);
        Assert.Equal("counter", e.Types["test_worker_tokens_total"]);
        Assert.Equal(42, e.Value("test_worker_tokens_total"));
    }

    [Fact]
    public void Record_MoreLabelSetsThanCap_OverflowIntoOneOtherSeries()
    {
        var (meter, exporter) = Create(maxSeries: 10);
        using var _ = meter; using var __ = exporter;
        var c = meter.CreateCounter<long>("test.by_tenant");
        for (int i = 0; i < 1000; i++) c.Add(1, new KeyValuePair<string, object?>("tenant", "t" + i));

        var e = Exposition.Parse(exporter.Collect());

        var series = e.Named("test_by_tenant_total").ToList();
        Assert.Equal(11, series.Count);
        Assert.Equal(990, e.Value("test_by_tenant_total", ("tenant", PrometheusExporter.OverflowLabelValue)));
        Assert.Equal(1000, series.Sum(s => s.Value)); // nothing lost
        Assert.Equal(990, exporter.OverflowMeasurements);
        Assert.Equal(990, e.Value(PrometheusExporter.OverflowMetricName, ("metric", "test_by_tenant_total")));
    }

    [Fact]
    public void Record_LabelValuesWithQuotesAndNewlines_EscapedAndRoundTrip()
    {
        var (meter, exporter) = Create();
        using var _ = meter; using var __ = exporter;
        var c = meter.CreateCounter<long>("test.escape");
        c.Add(1, new KeyValuePair<string, object?>("path", "a\"b\\c\nd"), new KeyValuePair<string, object?>("http.route", "/v1/x"),
            new KeyValuePair<string, object?>("ok", true), new KeyValuePair<string, object?>("nothing", null));

        string text = exporter.Collect();
        var e = Exposition.Parse(text);

        Assert.Contains("path=\"a\\\"b\\\\c\\nd\"", text, StringComparison.Ordinal);
        var s = Assert.Single(e.Named("test_escape_total"));
        Assert.Equal("a\"b\\c\nd", s.Labels["path"]);
        Assert.Equal("/v1/x", s.Labels["http_route"]);
        Assert.Equal("true", s.Labels["ok"]);
    }

    [Fact]
    public void Collect_MeterDisposed_InstrumentRemoved()
    {
        var (meter, exporter) = Create();
        using var __ = exporter;
        meter.CreateCounter<long>("test.gone").Add(1);
        Assert.Contains("test_gone_total", exporter.Collect(), StringComparison.Ordinal);
        meter.Dispose();
        Assert.DoesNotContain("test_gone_total", exporter.Collect(), StringComparison.Ordinal);
        Assert.Equal(0, exporter.InstrumentCount);
    }

    [Fact]
    public void Publish_MoreInstrumentsThanCap_ExtraInstrumentsIgnored()
    {
        var (meter, exporter) = Create(maxInstruments: 3);
        using var _ = meter; using var __ = exporter;
        for (int i = 0; i < 10; i++) meter.CreateCounter<long>("test.c" + i).Add(1);
        Assert.Equal(3, exporter.InstrumentCount);
        Assert.Equal(3, Exposition.Parse(exporter.Collect()).Types.Count);
    }

    [Fact]
    public void Listen_MeterOutsidePrefixesOrOtherScope_NotExported()
    {
        var (meter, exporter) = Create();
        using var _ = meter; using var __ = exporter;
        using var other = new Meter("Unrelated." + Guid.NewGuid().ToString("N"));
        other.CreateCounter<long>("test.unrelated").Add(1);
        meter.CreateCounter<long>("test.related").Add(1);
        string text = exporter.Collect();
        Assert.DoesNotContain("test_unrelated", text, StringComparison.Ordinal);
        Assert.Contains("test_related_total", text, StringComparison.Ordinal);

        string name = "Scoped." + Guid.NewGuid().ToString("N");
        var myScope = new object();
        using var scoped = new PrometheusExporter(new PrometheusExporterOptions { MeterPrefixes = [name], MeterScope = myScope });
        using var mine = new Meter(new MeterOptions(name) { Scope = myScope });
        using var theirs = new Meter(new MeterOptions(name) { Scope = new object() });
        mine.CreateCounter<long>("test.mine").Add(1);
        theirs.CreateCounter<long>("test.theirs").Add(1);
        string scopedText = scoped.Collect();
        Assert.Contains("test_mine_total", scopedText, StringComparison.Ordinal);
        Assert.DoesNotContain("test_theirs", scopedText, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Record_ConcurrentWriters_NoLostIncrements()
    {
        var (meter, exporter) = Create();
        using var _ = meter; using var __ = exporter;
        var c = meter.CreateCounter<long>("test.concurrent");
        var h = meter.CreateHistogram<double>("test.concurrent.latency", "s");
        await Task.WhenAll(Enumerable.Range(0, 4).Select(t => Task.Run(() =>
        {
            for (int i = 0; i < 5000; i++)
            {
                c.Add(1, new KeyValuePair<string, object?>("k", i % 7));
                h.Record(0.01, new KeyValuePair<string, object?>("k", i % 3));
                if (i % 1000 == 0) exporter.Collect();
            }
        })));
        var e = Exposition.Parse(exporter.Collect());
        Assert.Equal(20000, e.Named("test_concurrent_total").Sum(s => s.Value));
        Assert.Equal(20000, e.Named("test_concurrent_latency_seconds_count").Sum(s => s.Value));
    }

    [Fact]
    public void Collect_TwoInstrumentsSameName_WrittenOnce()
    {
        var (meter, exporter) = Create();
        using var _ = meter; using var __ = exporter;
        using var sameName = new Meter(meter.Name, "2.0"); // a second meter of the same name: distinct instruments
        meter.CreateCounter<long>("test.dup").Add(1);
        sameName.CreateCounter<long>("test.dup").Add(2);
        Assert.Equal(2, exporter.InstrumentCount);
        string text = exporter.Collect();
        Assert.Single(Exposition.Parse(text).Named("test_dup_total"));
    }

    [Fact]
    public void Record_ExistingSeries_AllocatesNothing()
    {
        var (meter, exporter) = Create();
        using var _ = meter; using var __ = exporter;
        var c = meter.CreateCounter<long>("test.alloc");
        var h = meter.CreateHistogram<double>("test.alloc.latency", "s");
        string[] tenants = ["acme/search", "acme/agents", "globex/batch"];
        void Once(int i)
        {
            c.Add(1, new KeyValuePair<string, object?>("tenant", tenants[i % 3]), new KeyValuePair<string, object?>("status", "200"));
            h.Record(0.05 * i, new KeyValuePair<string, object?>("tenant", tenants[i % 3]));
        }
        for (int i = 0; i < 100; i++) Once(i); // create the series, warm up
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 10_000; i++) Once(i);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.True(allocated < 1024, $"{allocated} bytes allocated for 20,000 measurements on existing series");
        Assert.Equal(10_100, Exposition.Parse(exporter.Collect()).Named("test_alloc_total").Sum(s => s.Value));
    }

    [Fact]
    public void Record_SameLabelsInAnyOrderOrFreshStrings_OneSeriesWithEveryIncrement()
    {
        // Hot label sets are matched on the tag objects (a cache in front of the label formatting): a reordered tag
        // list, equal values in new string objects and boxed numbers must still land on the one series they name.
        var (meter, exporter) = Create();
        using var _ = meter; using var __ = exporter;
        var c = meter.CreateCounter<long>("test.cache");
        for (int i = 0; i < 300; i++)
        {
            string tenant = new(['a', 'c', 'm', 'e']); // a new string object every time
            if (i % 3 == 0) c.Add(1, new("tenant", tenant), new("status", 200));
            else if (i % 3 == 1) c.Add(1, new("status", 200), new("tenant", tenant));
            else c.Add(1, new KeyValuePair<string, object?>("tenant", "acme"), new("status", (object)200));
        }

        c.Add(5, new KeyValuePair<string, object?>("tenant", "globex"), new("status", 200));
        var series = Exposition.Parse(exporter.Collect()).Named("test_cache_total").ToList();
        Assert.Equal(2, series.Count);
        Assert.Equal(300, series.Single(s => s.Labels["tenant"] == "acme").Value);
        Assert.Equal(5, series.Single(s => s.Labels["tenant"] == "globex").Value);
    }
}
