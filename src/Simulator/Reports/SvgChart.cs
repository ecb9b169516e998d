using System.Globalization;
using System.Text;
using Simulator.Simulation;

namespace Simulator.Reports;

/// <summary>
/// A hand-written SVG with two panels: the TTFT CDF of every run (log-scaled x axis), and per-tenant weighted
/// service over time for each run (one small line chart per run, at most 8 runs shown).
/// </summary>
public static class SvgChart
{
    private static readonly string[] Palette =
    [
        "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
    ];

    private static readonly CultureInfo C = CultureInfo.InvariantCulture;

    /// <summary>Renders the chart.</summary>
    public static string Render(string title, IReadOnlyList<RunResult> runs, IReadOnlyList<string> tenants)
    {
        const int width = 960;
        const int cdfHeight = 420;
        int shown = Math.Min(runs.Count, 8);
        int cols = 2;
        int rows = (shown + cols - 1) / cols;
        const int panelH = 220;
        int height = cdfHeight + 40 + rows * (panelH + 20) + 20;
        var sb = new StringBuilder();
        sb.Append(C, $"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\" font-size=\"12\">\n");
        sb.Append(C, $"<rect x=\"0\" y=\"0\" width=\"{width}\" height=\"{height}\" fill=\"white\"/>\n");
        sb.Append(C, $"<text x=\"{width / 2}\" y=\"22\" text-anchor=\"middle\" font-size=\"15\" font-weight=\"bold\">{Esc(title)}</text>\n");
        Cdf(sb, runs, 70, 62, width - 330, cdfHeight - 110);
        int top = cdfHeight + 30;
        sb.Append(C, $"<text x=\"{width / 2}\" y=\"{top - 4}\" text-anchor=\"middle\" font-size=\"14\" font-weight=\"bold\">Weighted service per tenant over time (tokens/s)</text>\n");
        for (int i = 0; i < shown; i++)
        {
            int x = 70 + (i % cols) * (width / cols);
            int y = top + 10 + (i / cols) * (panelH + 20);
            Service(sb, runs[i], tenants, x, y, width / cols - 160, panelH - 50);
        }

        sb.Append("</svg>\n");
        return sb.ToString();
    }

    private static void Cdf(StringBuilder sb, IReadOnlyList<RunResult> runs, int x0, int y0, int w, int h)
    {
        double min = double.MaxValue, max = 0;
        foreach (var r in runs)
        {
            if (r.TtftSamplesMs.Count > 0)
            {
                min = Math.Min(min, Math.Max(1, r.TtftSamplesMs[0]));
                max = Math.Max(max, r.TtftSamplesMs[^1]);
            }
        }

        if (max <= 0)
        {
            min = 1;
            max = 10;
        }

        double lmin = Math.Floor(Math.Log10(min)), lmax = Math.Ceiling(Math.Log10(Math.Max(max, min * 10)));
        double X(double v) => x0 + (Math.Log10(Math.Max(v, Math.Pow(10, lmin))) - lmin) / (lmax - lmin) * w;
        double Y(double f) => y0 + h - f * h;

        sb.Append(C, $"<text x=\"{x0 + w / 2}\" y=\"{y0 - 6}\" text-anchor=\"middle\" font-size=\"14\" font-weight=\"bold\">TTFT CDF per policy</text>\n");
        sb.Append(C, $"<rect x=\"{x0}\" y=\"{y0}\" width=\"{w}\" height=\"{h}\" fill=\"none\" stroke=\"#333\"/>\n");
        for (double d = lmin; d <= lmax; d++)
        {
            double gx = X(Math.Pow(10, d));
            sb.Append(C, $"<line x1=\"{gx:F1}\" y1=\"{y0}\" x2=\"{gx:F1}\" y2=\"{y0 + h}\" stroke=\"#ddd\"/>\n");
            sb.Append(C, $"<text x=\"{gx:F1}\" y=\"{y0 + h + 16}\" text-anchor=\"middle\">{FormatMs(Math.Pow(10, d))}</text>\n");
        }

        for (int q = 0; q <= 4; q++)
        {
            double f = q / 4.0;
            double gy = Y(f);
            sb.Append(C, $"<line x1=\"{x0}\" y1=\"{gy:F1}\" x2=\"{x0 + w}\" y2=\"{gy:F1}\" stroke=\"#ddd\"/>\n");
            sb.Append(C, $"<text x=\"{x0 - 6}\" y=\"{gy + 4:F1}\" text-anchor=\"end\">{f:F2}</text>\n");
        }

        sb.Append(C, $"<text x=\"{x0 + w / 2}\" y=\"{y0 + h + 34}\" text-anchor=\"middle\">time to first token (log scale)</text>\n");
        sb.Append(C, $"<text x=\"{x0 - 44}\" y=\"{y0 + h / 2}\" text-anchor=\"middle\" transform=\"rotate(-90 {x0 - 44} {y0 + h / 2})\">fraction of requests</text>\n");

        for (int i = 0; i < runs.Count; i++)
        {
            var s = runs[i].TtftSamplesMs;
            string color = Palette[i % Palette.Length];
            if (s.Count > 0)
            {
                var pts = new StringBuilder();
                int stepN = Math.Max(1, s.Count / 400);
                for (int k = 0; k < s.Count; k += stepN)
                {
                    pts.Append(C, $"{X(s[k]):F1},{Y((k + 1.0) / s.Count):F1} ");
                }

                pts.Append(C, $"{X(s[^1]):F1},{Y(1):F1}");
                sb.Append(C, $"<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{pts}\"/>\n");
            }

            int ly = y0 + 10 + i * 18;
            sb.Append(C, $"<line x1=\"{x0 + w + 16}\" y1=\"{ly}\" x2=\"{x0 + w + 40}\" y2=\"{ly}\" stroke=\"{color}\" stroke-width=\"3\"/>\n");
            sb.Append(C, $"<text x=\"{x0 + w + 46}\" y=\"{ly + 4}\">{Esc(Label(runs[i]))}</text>\n");
        }
    }

    private static void Service(StringBuilder sb, RunResult run, IReadOnlyList<string> tenants, int x0, int y0, int w, int h)
    {
        var buckets = run.ServiceOverTime;
        int n = buckets.Length;
        int group = Math.Max(1, (n + 99) / 100); // at most ~100 points per line
        int points = (n + group - 1) / group;
        var series = new double[tenants.Count][];
        double max = 0;
        for (int t = 0; t < tenants.Count; t++)
        {
            series[t] = new double[points];
            for (int p = 0; p < points; p++)
            {
                double sum = 0;
                for (int b = p * group; b < Math.Min(n, (p + 1) * group); b++)
                {
                    sum += buckets[b][t];
                }

                series[t][p] = sum / (group * run.ServiceBucketSeconds);
                max = Math.Max(max, series[t][p]);
            }
        }

        max = max <= 0 ? 1 : max;
        double span = n * run.ServiceBucketSeconds;
        sb.Append(C, $"<text x=\"{x0 + w / 2}\" y=\"{y0 + 12}\" text-anchor=\"middle\" font-weight=\"bold\">{Esc(Label(run))}</text>\n");
        int py = y0 + 20;
        sb.Append(C, $"<rect x=\"{x0}\" y=\"{py}\" width=\"{w}\" height=\"{h}\" fill=\"none\" stroke=\"#333\"/>\n");
        sb.Append(C, $"<text x=\"{x0 - 4}\" y=\"{py + 10}\" text-anchor=\"end\" font-size=\"10\">{Short(max)}</text>\n");
        sb.Append(C, $"<text x=\"{x0 - 4}\" y=\"{py + h}\" text-anchor=\"end\" font-size=\"10\">0</text>\n");
        sb.Append(C, $"<text x=\"{x0}\" y=\"{py + h + 14}\" font-size=\"10\">0 s</text>\n");
        sb.Append(C, $"<text x=\"{x0 + w}\" y=\"{py + h + 14}\" text-anchor=\"end\" font-size=\"10\">{span:F0} s</text>\n");
        int shownTenants = Math.Min(tenants.Count, 10);
        for (int t = 0; t < shownTenants; t++)
        {
            string color = Palette[t % Palette.Length];
            var pts = new StringBuilder();
            for (int p = 0; p < points; p++)
            {
                double x = x0 + (points == 1 ? 0 : (double)p / (points - 1) * w);
                double y = py + h - series[t][p] / max * h;
                pts.Append(C, $"{x:F1},{y:F1} ");
            }

            sb.Append(C, $"<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"1.5\" points=\"{pts}\"/>\n");
            sb.Append(C, $"<text x=\"{x0 + w + 4}\" y=\"{py + 10 + t * 13}\" font-size=\"10\" fill=\"{color}\">{Esc(tenants[t])}</text>\n");
        }
    }

    private static string Label(RunResult r) => r.Retention == "off" ? $"{r.Routing} / {r.Scheduling}" : $"{r.Routing} / {r.Scheduling} / {r.Retention}";

    private static string FormatMs(double ms) => ms >= 1000 ? (ms / 1000).ToString("0.###", C) + " s" : ms.ToString("0.###", C) + " ms";

    private static string Short(double v) => v >= 1e6 ? (v / 1e6).ToString("F1", C) + "M" : v >= 1e3 ? (v / 1e3).ToString("F1", C) + "k" : v.ToString("F0", C);

    private static string Esc(string s) => s.Replace("&", "&amp;", StringComparison.Ordinal).Replace("<", "&lt;", StringComparison.Ordinal).Replace(">", "&gt;", StringComparison.Ordinal);
}
