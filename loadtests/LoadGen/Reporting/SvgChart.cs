using System.Globalization;
using System.Security;
using System.Text;
using LoadGen.Metrics;

namespace LoadGen.Reporting;

/// <summary>
/// A self-contained SVG (1000×700): TTFT and E2E latency CDFs per tenant (log-scale time axis) and per-tenant
/// output-token throughput over time, with timed events (e.g. a worker kill) as vertical lines.
/// </summary>
public static class SvgChart
{
    private static readonly string[] Palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"];
    private static readonly CultureInfo C = CultureInfo.InvariantCulture;

    /// <summary>Renders the chart.</summary>
    public static string Render(RunReport report, IReadOnlyList<RequestResult> results)
    {
        ArgumentNullException.ThrowIfNull(report);
        ArgumentNullException.ThrowIfNull(results);
        var tenants = report.Tenants.Keys.ToList();
        var color = new Dictionary<string, string>(StringComparer.Ordinal);
        for (int i = 0; i < tenants.Count; i++)
        {
            color[tenants[i]] = Palette[i % Palette.Length];
        }

        var ttft = new Dictionary<string, List<double>>(StringComparer.Ordinal);
        var e2e = new Dictionary<string, List<double>>(StringComparer.Ordinal);
        foreach (string t in tenants)
        {
            ttft[t] = [];
            e2e[t] = [];
        }

        foreach (var r in results)
        {
            if (r.Outcome != Outcome.Ok || !ttft.ContainsKey(r.Tenant))
            {
                continue;
            }

            if (r.TtftMs is double t)
            {
                ttft[r.Tenant].Add(t);
            }

            e2e[r.Tenant].Add(r.E2eMs);
        }

        var sb = new StringBuilder();
        sb.Append("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"1000\" height=\"700\" viewBox=\"0 0 1000 700\" font-family=\"sans-serif\" font-size=\"12\">\n");
        sb.Append("<rect width=\"1000\" height=\"700\" fill=\"white\"/>\n");
        var o = report.Overall;
        Text(sb, 20, 24, $"{report.Scenario} → {report.Target}   ok {o.Ok}  error {o.Error}  no answer {o.NoAnswer}   {report.ElapsedSeconds:0.0} s", 15, "bold");
        Cdf(sb, "TTFT CDF (ms, log scale)", ttft, color, 60, 60, 400, 250);
        Cdf(sb, "E2E latency CDF (ms, log scale)", e2e, color, 560, 60, 400, 250);
        Throughput(sb, report, color, 60, 400, 900, 230);

        // Legend
        double lx = 60;
        foreach (string t in tenants)
        {
            sb.Append(C, $"<rect x=\"{lx}\" y=\"672\" width=\"14\" height=\"4\" fill=\"{color[t]}\"/>");
            Text(sb, lx + 18, 678, t, 12, "normal");
            lx += 30 + 7 * t.Length;
        }

        sb.Append("</svg>\n");
        return sb.ToString();
    }

    private static void Cdf(StringBuilder sb, string title, Dictionary<string, List<double>> series, Dictionary<string, string> color, double x, double y, double w, double h)
    {
        double min = double.MaxValue, max = double.MinValue;
        foreach (var list in series.Values)
        {
            foreach (double v in list)
            {
                min = Math.Min(min, Math.Max(v, 0.01));
                max = Math.Max(max, Math.Max(v, 0.01));
            }
        }

        Frame(sb, title, x, y, w, h);
        if (min == double.MaxValue)
        {
            Text(sb, x + w / 2 - 30, y + h / 2, "no data", 12, "normal");
            return;
        }

        double lo = Math.Floor(Math.Log10(min)), hi = Math.Ceiling(Math.Log10(max));
        if (hi <= lo)
        {
            hi = lo + 1;
        }

        double X(double v) => x + (Math.Log10(Math.Max(v, 0.01)) - lo) / (hi - lo) * w;
        double Y(double p) => y + h - p * h;
        for (double d = lo; d <= hi; d++)
        {
            double gx = x + (d - lo) / (hi - lo) * w;
            sb.Append(C, $"<line x1=\"{gx:0.#}\" y1=\"{y}\" x2=\"{gx:0.#}\" y2=\"{y + h}\" stroke=\"#ddd\"/>");
            Text(sb, gx - 12, y + h + 16, FormatMs(Math.Pow(10, d)), 11, "normal");
        }

        Text(sb, x - 22, Y(0) + 4, "0", 10, "normal");
        Text(sb, x - 22, Y(1) + 4, "1", 10, "normal");
        foreach (double p in new[] { 0.5, 0.9, 0.99 })
        {
            sb.Append(C, $"<line x1=\"{x}\" y1=\"{Y(p):0.#}\" x2=\"{x + w}\" y2=\"{Y(p):0.#}\" stroke=\"#eee\" stroke-dasharray=\"4 3\"/>");
            Text(sb, x + w + 4, Y(p) + 4, $"p{p * 100:0.#}", 10, "normal");
        }

        foreach (var (tenant, values) in series)
        {
            if (values.Count == 0)
            {
                continue;
            }

            values.Sort();
            var pts = new StringBuilder();
            int step = Math.Max(1, values.Count / 400);
            for (int i = 0; i < values.Count; i += step)
            {
                pts.Append(C, $"{X(values[i]):0.#},{Y((i + 1.0) / values.Count):0.#} ");
            }

            pts.Append(C, $"{X(values[^1]):0.#},{Y(1):0.#}");
            sb.Append(C, $"<polyline fill=\"none\" stroke=\"{color[tenant]}\" stroke-width=\"2\" points=\"{pts}\"/>\n");
        }
    }

    private static void Throughput(StringBuilder sb, RunReport report, Dictionary<string, string> color, double x, double y, double w, double h)
    {
        Frame(sb, $"output tokens/s per tenant ({report.Timeline.BucketSeconds:0.#} s buckets)", x, y, w, h);
        double max = 1;
        int n = 1;
        foreach (var s in report.Timeline.OutputTokensPerSecond.Values)
        {
            n = Math.Max(n, s.Length);
            foreach (double v in s)
            {
                max = Math.Max(max, v);
            }
        }

        double bucket = report.Timeline.BucketSeconds;
        double span = n * bucket;
        double X(double t) => x + t / span * w;
        double Y(double v) => y + h - v / max * h;
        for (int i = 0; i <= 4; i++)
        {
            double v = max * i / 4;
            sb.Append(C, $"<line x1=\"{x}\" y1=\"{Y(v):0.#}\" x2=\"{x + w}\" y2=\"{Y(v):0.#}\" stroke=\"#eee\"/>");
            Text(sb, x - 45, Y(v) + 4, v.ToString("0", C), 10, "normal");
        }

        double tick = NiceStep(span / 8);
        for (double t = 0; t <= span + 1e-9; t += tick)
        {
            sb.Append(C, $"<line x1=\"{X(t):0.#}\" y1=\"{y + h}\" x2=\"{X(t):0.#}\" y2=\"{y + h + 4}\" stroke=\"#888\"/>");
            Text(sb, X(t) - 8, y + h + 16, t.ToString("0.#", C) + " s", 11, "normal");
        }

        foreach (var (tenant, s) in report.Timeline.OutputTokensPerSecond)
        {
            var pts = new StringBuilder();
            for (int i = 0; i < s.Length; i++)
            {
                pts.Append(C, $"{X((i + 0.5) * bucket):0.#},{Y(s[i]):0.#} ");
            }

            sb.Append(C, $"<polyline fill=\"none\" stroke=\"{color[tenant]}\" stroke-width=\"2\" points=\"{pts}\"/>\n");
        }

        foreach (var e in report.Events)
        {
            double ex = X(e.AtSeconds);
            sb.Append(C, $"<line x1=\"{ex:0.#}\" y1=\"{y}\" x2=\"{ex:0.#}\" y2=\"{y + h}\" stroke=\"black\" stroke-dasharray=\"6 4\"/>");
            Text(sb, ex + 4, y + 14, e.Name, 11, "normal");
        }
    }

    private static void Frame(StringBuilder sb, string title, double x, double y, double w, double h)
    {
        sb.Append(C, $"<rect x=\"{x}\" y=\"{y}\" width=\"{w}\" height=\"{h}\" fill=\"none\" stroke=\"#888\"/>\n");
        Text(sb, x, y - 8, title, 13, "bold");
    }

    private static void Text(StringBuilder sb, double x, double y, string text, int size, string weight) =>
        sb.Append(C, $"<text x=\"{x:0.#}\" y=\"{y:0.#}\" font-size=\"{size}\" font-weight=\"{weight}\">{SecurityElement.Escape(text)}</text>\n");

    private static double NiceStep(double raw)
    {
        double[] steps = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600];
        foreach (double st in steps)
        {
            if (st >= raw)
            {
                return st;
            }
        }

        return Math.Ceiling(raw / 3600) * 3600;
    }

    private static string FormatMs(double ms) => ms >= 1000 ? (ms / 1000).ToString("0.##", C) + " s" : ms.ToString("0.##", C);
}
