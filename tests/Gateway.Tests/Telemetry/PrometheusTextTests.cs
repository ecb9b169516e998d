using Gateway.Telemetry;
using System.Text;

namespace Gateway.Tests.Telemetry;

public class PrometheusTextTests
{
    [Theory]
    [InlineData("http.server.request.duration", "s", PrometheusMetricType.Histogram, "http_server_request_duration_seconds", 1.0)]
    [InlineData("gateway.queue.wait", "ms", PrometheusMetricType.Histogram, "gateway_queue_wait_seconds", 0.001)]
    [InlineData("gateway.requests", "{request}", PrometheusMetricType.Counter, "gateway_requests_total", 1.0)]
    [InlineData("gateway.requests.total", "{request}", PrometheusMetricType.Counter, "gateway_requests_total", 1.0)]
    [InlineData("dotnet.gc.heap.total_allocated", "By", PrometheusMetricType.Counter, "dotnet_gc_heap_total_allocated_bytes_total", 1.0)]
    [InlineData("gateway.worker.kv_usage", "1", PrometheusMetricType.Gauge, "gateway_worker_kv_usage_ratio", 1.0)]
    [InlineData("process.cpu.time", "s", PrometheusMetricType.Counter, "process_cpu_time_seconds_total", 1.0)]
    [InlineData("latency_seconds", "s", PrometheusMetricType.Gauge, "latency_seconds", 1.0)]
    [InlineData("dotnet.timer.count", "{timer}", PrometheusMetricType.Gauge, "dotnet_timer_count_value", 1.0)]
    [InlineData("9lives", null, PrometheusMetricType.Gauge, "_9lives", 1.0)]
    [InlineData("a.-b c", "", PrometheusMetricType.Gauge, "a_b_c", 1.0)]
    public void MetricName_InstrumentNameAndUnit_PrometheusConvention(string name, string? unit, PrometheusMetricType type, string expected, double expectedScale)
    {
        Assert.Equal(expected, PrometheusText.MetricName(name, unit, type, out double scale));
        Assert.Equal(expectedScale, scale);
    }

    [Fact]
    public void AppendLabelValue_QuotesBackslashesNewlines_Escaped()
    {
        var sb = new StringBuilder();
        PrometheusText.AppendLabelValue(sb, "a\"b\\c\nd");
        Assert.Equal("a\\\"b\\\\c\\nd", sb.ToString());
    }

    [Theory]
    [InlineData("http.route", "http_route")]
    [InlineData("1st", "tag_1st")]
    [InlineData("__name__", "tag___name__")]
    [InlineData("ok_name", "ok_name")]
    public void AppendLabelName_InvalidCharacters_Sanitised(string name, string expected)
    {
        var sb = new StringBuilder();
        PrometheusText.AppendLabelName(sb, name);
        Assert.Equal(expected, sb.ToString());
    }

    [Fact]
    public void FormatDouble_SpecialValues_PrometheusSpelling()
    {
        Assert.Equal("+Inf", PrometheusText.FormatDouble(double.PositiveInfinity));
        Assert.Equal("-Inf", PrometheusText.FormatDouble(double.NegativeInfinity));
        Assert.Equal("NaN", PrometheusText.FormatDouble(double.NaN));
        Assert.Equal("0.25", PrometheusText.FormatDouble(0.25));
        Assert.Equal("3", PrometheusText.FormatDouble(3));
    }

    [Fact]
    public void EscapeHelp_NewlinesAndBackslashes_Escaped() =>
        Assert.Equal("line1\\nline2 \\\\", PrometheusText.EscapeHelp("line1\r\nline2 \\"));
}
