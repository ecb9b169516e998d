using Prometheus;

namespace Gateway.Telemetry;

/// <summary>
/// A one-label gauge whose values are read at scrape time: each update sets the reported series and removes those no
/// longer reported, so a worker that left the fleet (or a tenant removed by a reload) leaves the exposition too.
/// </summary>
internal sealed class ObservedGauge(Gauge gauge)
{
    private readonly HashSet<string> _published = new(StringComparer.Ordinal);
    private readonly object _gate = new();

    public void Update<T>(IEnumerable<T> items, Func<T, string> label, Func<T, double> value)
    {
        lock (_gate)
        {
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var item in items)
            {
                string l = label(item);
                gauge.WithLabels(l).Set(value(item));
                seen.Add(l);
            }

            foreach (var gone in _published.Where(p => !seen.Contains(p)).ToList())
            {
                gauge.RemoveLabelled(gone);
            }

            _published.Clear();
            _published.UnionWith(seen);
        }
    }
}
