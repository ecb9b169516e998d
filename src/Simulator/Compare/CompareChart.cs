using System.Globalization;
using System.Text;

namespace Simulator.Compare;

/// <summary>
/// SVG of a suite: one panel per scenario, one group of bars per load level, one bar per routing policy: its median TTFT
/// p90 over the seeds on a log axis, with a whisker from the lowest to the highest seed.
/// </summary>
public static class CompareChart
{
    private static readonly string[] Palette =
    [
        "#7f7f7f", "#bcbd22", "#d62728", "#1f77b4", "#aec7e8", "#ff7f0e", "#ffbb78", "#9467bd", "#c5b0d5", "#2ca02c", "#17becf", "#8c564b",
    ];

    private static readonly CultureInfo C = CultureInfo.InvariantCulture;

    /// <summary>Renders the chart.</summary>
    public static string Render(Suite suite, IReadOnlyList<CompareCell> cells)
    {
        var groups = cells.GroupBy(c => c.Scenario.Name).ToList();
        const int width = 980, panelH = 260, top = 70, left = 70;
        int height = top + groups.Count * (panelH + 40) + 20;
        var sb = new StringBuilder();
        sb.Append(C, $"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\" font-size=\"11\">\n");
        sb.Append(C, $"<rect width=\"{width}\" height=\"{height}\" fill=\"white\"/>\n");
        sb.Append(C, $"<text x=\"{width / 2}\" y=\"22\" text-anchor=\"middle\" font-size=\"15\" font-weight=\"bold\">TTFT p90 by routing policy (median over seeds, whisker = seed range; log scale)</text>\n");
        for (int k = 0; k < suite.Routing.Count; k++)
        {
            int x = left + k * 120 % (width - left - 120);
            int y = 40 + k * 120 / (width - left - 120) * 14;
            sb.Append(C, $"<rect x=\"{x}\" y=\"{y}\" width=\"10\" height=\"10\" fill=\"{Palette[k % Palette.Length]}\"/><text x=\"{x + 14}\" y=\"{y + 9}\">{Esc(suite.Routing[k])}</text>\n");
        }

        int plotW = width - left - 20;
        for (int g = 0; g < groups.Count; g++)
        {
            int y0 = top + g * (panelH + 40) + 20;
            var list = groups[g].ToList();
            var values = list.SelectMany(c => c.Runs.Select(r => r.TtftMs.P90)).Where(v => v > 0).ToList();
            double lo = Math.Pow(10, Math.Floor(Math.Log10(values.Count > 0 ? values.Min() : 1)));
            double hi = Math.Pow(10, Math.Ceiling(Math.Log10(values.Count > 0 ? values.Max() : 10)));
            if (hi <= lo)
            {
                hi = lo * 10;
            }

            double Y(double v) => y0 + panelH - (Math.Log10(Math.Max(v, lo)) - Math.Log10(lo)) / (Math.Log10(hi) - Math.Log10(lo)) * panelH;
            sb.Append(C, $"<text x=\"{left}\" y=\"{y0 - 6}\" font-size=\"13\" font-weight=\"bold\">{Esc(groups[g].Key)}: {Esc(list[0].Scenario.Title)}</text>\n");
            sb.Append(C, $"<rect x=\"{left}\" y=\"{y0}\" width=\"{plotW}\" height=\"{panelH}\" fill=\"none\" stroke=\"#999\"/>\n");
            for (double t = lo; t <= hi * 1.0001; t *= 10)
            {
                double y = Y(t);
                sb.Append(C, $"<line x1=\"{left}\" x2=\"{left + plotW}\" y1=\"{y:F1}\" y2=\"{y:F1}\" stroke=\"#eee\"/><text x=\"{left - 4}\" y=\"{y + 4:F1}\" text-anchor=\"end\">{Ms(t)}</text>\n");
            }

            double groupW = (double)plotW / list.Count;
            double barW = groupW * 0.8 / Math.Max(1, suite.Routing.Count);
            for (int l = 0; l < list.Count; l++)
            {
                var cell = list[l];
                double gx = left + l * groupW + groupW * 0.1;
                sb.Append(C, $"<text x=\"{gx + groupW * 0.4:F1}\" y=\"{y0 + panelH + 14}\" text-anchor=\"middle\">{SuiteScenario.LoadLabel(cell.Load)} rate</text>\n");
                for (int k = 0; k < suite.Routing.Count; k++)
                {
                    var s = CompareReport.Metric(cell, suite.Routing[k], r => r.TtftMs.P90);
                    if (double.IsNaN(s.Median))
                    {
                        continue;
                    }

                    double x = gx + k * barW, y = Y(s.Median);
                    sb.Append(C, $"<rect x=\"{x:F1}\" y=\"{y:F1}\" width=\"{barW * 0.9:F1}\" height=\"{y0 + panelH - y:F1}\" fill=\"{Palette[k % Palette.Length]}\"><title>{Esc(suite.Routing[k])} {SuiteScenario.LoadLabel(cell.Load)}: {s.Median:F0} ms ({s.Min:F0}–{s.Max:F0})</title></rect>\n");
                    double cx = x + barW * 0.45;
                    sb.Append(C, $"<line x1=\"{cx:F1}\" x2=\"{cx:F1}\" y1=\"{Y(s.Min):F1}\" y2=\"{Y(s.Max):F1}\" stroke=\"black\"/>\n");
                }
            }
        }

        sb.Append("</svg>\n");
        return sb.ToString();
    }

    private static string Ms(double v) => v >= 1000 ? (v / 1000).ToString("0.##", C) + " s" : v.ToString("0.##", C) + " ms";

    private static string Esc(string s) => s.Replace("&", "&amp;", StringComparison.Ordinal).Replace("<", "&lt;", StringComparison.Ordinal).Replace(">", "&gt;", StringComparison.Ordinal);
}
