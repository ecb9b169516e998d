using System.Diagnostics.Metrics;
using System.Globalization;
using System.Text;

namespace Gateway.Telemetry;

/// <summary>
/// Listens to <see cref="System.Diagnostics.Metrics"/> instruments with a <see cref="MeterListener"/>, aggregates
/// them cumulatively in memory and renders Prometheus text format 0.0.4 on demand (<see cref="Collect"/>).
/// <list type="bullet">
/// <item>Counter, ObservableCounter → <c>counter</c> (<c>_total</c>); UpDownCounter, ObservableUpDownCounter,
/// ObservableGauge, Gauge → <c>gauge</c>; Histogram → <c>histogram</c> (<c>_bucket{le}</c>, <c>_sum</c>, <c>_count</c>).</item>
/// <item>Tags become labels (names sanitised, values escaped), one series per distinct tag set, sorted by key.</item>
/// <item>Cardinality is bounded: at most <see cref="PrometheusExporterOptions.MaxSeriesPerInstrument"/> series per
/// instrument, then one overflow series whose labels all read <c>other</c>; at most
/// <see cref="PrometheusExporterOptions.MaxInstruments"/> instruments.</item>
/// <item>Units: names get the unit as suffix (<see cref="PrometheusText.MetricName"/>); ms/us/ns values are
/// converted to seconds, so every time metric is exported in seconds.</item>
/// <item>Observable instruments are read at each scrape; their series are replaced by what the callbacks report
/// (a worker that disappeared disappears from the output).</item>
/// </list>
/// Thread-safe: measurements lock their instrument only; scrapes are serialised.
/// </summary>
public sealed class PrometheusExporter : IDisposable
{
    /// <summary>Label value given to every label of the overflow series.</summary>
    public const string OverflowLabelValue = "other";

    /// <summary>Self-metric: measurements routed to the overflow series, by metric.</summary>
    public const string OverflowMetricName = "telemetry_exporter_overflow_measurements_total";

    private readonly PrometheusExporterOptions _options;
    private readonly MeterListener _listener;
    private readonly object _instrumentsGate = new();
    private readonly object _scrapeGate = new();
    private InstrumentState[] _instruments = [];
    private bool _disposed;

    [ThreadStatic] private static StringBuilder? t_keyBuilder;
    [ThreadStatic] private static char[]? t_keyChars;

    /// <summary>Starts listening at once to matching instruments, including those published before.</summary>
    public PrometheusExporter(PrometheusExporterOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options;
        _listener = new MeterListener
        {
            InstrumentPublished = OnInstrumentPublished,
            MeasurementsCompleted = OnMeasurementsCompleted,
        };
        _listener.SetMeasurementEventCallback<double>(static (i, v, t, s) => ((InstrumentState)s!).Record(v, t));
        _listener.SetMeasurementEventCallback<float>(static (i, v, t, s) => ((InstrumentState)s!).Record(v, t));
        _listener.SetMeasurementEventCallback<long>(static (i, v, t, s) => ((InstrumentState)s!).Record(v, t));
        _listener.SetMeasurementEventCallback<int>(static (i, v, t, s) => ((InstrumentState)s!).Record(v, t));
        _listener.SetMeasurementEventCallback<short>(static (i, v, t, s) => ((InstrumentState)s!).Record(v, t));
        _listener.SetMeasurementEventCallback<byte>(static (i, v, t, s) => ((InstrumentState)s!).Record(v, t));
        _listener.SetMeasurementEventCallback<decimal>(static (i, v, t, s) => ((InstrumentState)s!).Record((double)v, t));
        _listener.Start();
    }

    /// <summary>Number of instruments currently tracked.</summary>
    public int InstrumentCount => Volatile.Read(ref _instruments).Length;

    /// <summary>Measurements that went to an overflow series since start, over all instruments.</summary>
    public long OverflowMeasurements
    {
        get
        {
            long n = 0;
            foreach (var s in Volatile.Read(ref _instruments)) n += Interlocked.Read(ref s.OverflowCount);
            return n;
        }
    }

    private bool Matches(Meter meter)
    {
        if (_options.MeterScope is not null && meter.Scope is not null && !ReferenceEquals(meter.Scope, _options.MeterScope))
            return false;
        foreach (var p in _options.MeterPrefixes)
            if (meter.Name.StartsWith(p, StringComparison.Ordinal)) return true;
        return false;
    }

    private void OnInstrumentPublished(Instrument instrument, MeterListener listener)
    {
        if (_disposed || !Matches(instrument.Meter)) return;
        InstrumentState? state = InstrumentState.TryCreate(instrument, _options);
        if (state is null) return;
        lock (_instrumentsGate)
        {
            if (_instruments.Length >= _options.MaxInstruments) return;
            _instruments = [.. _instruments, state];
        }
        listener.EnableMeasurementEvents(instrument, state);
    }

    private void OnMeasurementsCompleted(Instrument instrument, object? state)
    {
        lock (_instrumentsGate)
        {
            int i = Array.IndexOf(_instruments, state);
            if (i < 0) return;
            var next = new InstrumentState[_instruments.Length - 1];
            Array.Copy(_instruments, 0, next, 0, i);
            Array.Copy(_instruments, i + 1, next, i, _instruments.Length - i - 1);
            _instruments = next;
        }
    }

    /// <summary>Reads observable instruments and renders every tracked metric in text format 0.0.4.</summary>
    public string Collect()
    {
        var sb = new StringBuilder(4096);
        lock (_scrapeGate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            var instruments = Volatile.Read(ref _instruments);
            foreach (var s in instruments)
                if (s.Observable) s.BeginObservation();
            _listener.RecordObservableInstruments();

            // Stable order; two instruments mapping to one name (e.g. two meter versions) would make an invalid
            // exposition, so only the first is written.
            var ordered = (InstrumentState[])instruments.Clone();
            Array.Sort(ordered, static (a, b) => string.CompareOrdinal(a.Name, b.Name));
            var written = new HashSet<string>(StringComparer.Ordinal);
            var overflowed = new List<(string Name, long Count)>();
            foreach (var s in ordered)
            {
                if (!written.Add(s.Name)) continue;
                s.Write(sb);
                long o = Interlocked.Read(ref s.OverflowCount);
                if (o > 0) overflowed.Add((s.Name, o));
            }
            if (overflowed.Count > 0 && written.Add(OverflowMetricName))
            {
                sb.Append("# HELP ").Append(OverflowMetricName)
                  .Append(" Measurements folded into an instrument's overflow series because its label sets exceeded the cap.\n");
                sb.Append("# TYPE ").Append(OverflowMetricName).Append(" counter\n");
                foreach (var (name, count) in overflowed)
                    sb.Append(OverflowMetricName).Append("{metric=\"").Append(name).Append("\"} ")
                      .Append(count.ToString(CultureInfo.InvariantCulture)).Append('\n');
            }
        }
        return sb.ToString();
    }

    /// <summary>Stops listening.</summary>
    public void Dispose()
    {
        lock (_scrapeGate)
        {
            if (_disposed) return;
            _disposed = true;
        }
        _listener.Dispose();
    }

    /// <summary>
    /// Renders a tag set as the canonical label text (<c>a="x",b="y"</c>, keys sorted ordinally) into a
    /// thread-local buffer, so that looking up an existing series allocates nothing.
    /// </summary>
    internal static ReadOnlySpan<char> FormatLabels(ReadOnlySpan<KeyValuePair<string, object?>> tags, bool overflow = false)
    {
        if (tags.Length == 0) return [];
        var sb = t_keyBuilder ??= new StringBuilder(128);
        sb.Clear();
        Span<int> order = tags.Length <= 32 ? stackalloc int[tags.Length] : new int[tags.Length];
        for (int i = 0; i < order.Length; i++)
        {
            int j = i;
            while (j > 0 && string.CompareOrdinal(tags[order[j - 1]].Key, tags[i].Key) > 0) { order[j] = order[j - 1]; j--; }
            order[j] = i;
        }
        Span<char> scratch = stackalloc char[64];
        for (int k = 0; k < order.Length; k++)
        {
            var tag = tags[order[k]];
            if (k > 0) sb.Append(',');
            PrometheusText.AppendLabelName(sb, tag.Key);
            sb.Append("=\"");
            if (overflow) sb.Append(OverflowLabelValue);
            else AppendValue(sb, tag.Value, scratch);
            sb.Append('"');
        }
        var chars = t_keyChars;
        if (chars is null || chars.Length < sb.Length) t_keyChars = chars = new char[Math.Max(sb.Length, 256)];
        sb.CopyTo(0, chars, 0, sb.Length);
        return chars.AsSpan(0, sb.Length);
    }

    private static void AppendValue(StringBuilder sb, object? value, Span<char> scratch)
    {
        switch (value)
        {
            case null: return;
            case string s: PrometheusText.AppendLabelValue(sb, s); return;
            case bool b: sb.Append(b ? "true" : "false"); return;
            case ISpanFormattable f when f.TryFormat(scratch, out int n, default, CultureInfo.InvariantCulture):
                PrometheusText.AppendLabelValue(sb, scratch[..n]); return;
            default: PrometheusText.AppendLabelValue(sb, Convert.ToString(value, CultureInfo.InvariantCulture)); return;
        }
    }

    private const int RecentSlots = 32;

    private static int TagHash(ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        int h = tags.Length;
        foreach (var t in tags) h = HashCode.Combine(h, t.Key?.GetHashCode() ?? 0, t.Value?.GetHashCode() ?? 0);
        return h;
    }

    /// <summary>A label set seen before (the tags as recorded, in their order) and its series.</summary>
    private sealed class RecentTags(KeyValuePair<string, object?>[] tags, Series series)
    {
        public readonly Series Series = series;

        public bool Matches(ReadOnlySpan<KeyValuePair<string, object?>> other)
        {
            if (other.Length != tags.Length) return false;
            for (int i = 0; i < tags.Length; i++)
                if (!string.Equals(tags[i].Key, other[i].Key, StringComparison.Ordinal) || !Equals(tags[i].Value, other[i].Value)) return false;
            return true;
        }
    }

    private sealed class Series(string labels, int buckets)
    {
        public readonly string Labels = labels;
        public double Value;
        public readonly long[]? Buckets = buckets > 0 ? new long[buckets] : null; // per bucket, not cumulative; last = +Inf
        public double Sum;
        public long Count;
    }

    private enum Aggregation { Sum, LastValue, Histogram }

    private sealed class InstrumentState
    {
        public readonly string Name;
        public readonly bool Observable;
        public long OverflowCount;
        private readonly string _help;
        private readonly PrometheusMetricType _type;
        private readonly Aggregation _aggregation;
        private readonly double _scale;
        private readonly double[] _bounds;
        private readonly int _maxSeries;
        private readonly object _gate = new();
        private readonly Dictionary<string, Series> _series = new(StringComparer.Ordinal);
        private readonly Dictionary<string, Series>.AlternateLookup<ReadOnlySpan<char>> _lookup;
        private readonly RecentTags?[] _recent = new RecentTags?[RecentSlots];
        private Series? _overflow;

        private InstrumentState(string name, string help, PrometheusMetricType type, Aggregation aggregation, bool observable,
            double scale, double[] bounds, int maxSeries)
        {
            Name = name; _help = help; _type = type; _aggregation = aggregation; Observable = observable;
            _scale = scale; _bounds = bounds; _maxSeries = Math.Max(1, maxSeries);
            _lookup = _series.GetAlternateLookup<ReadOnlySpan<char>>();
        }

        public static InstrumentState? TryCreate(Instrument instrument, PrometheusExporterOptions options)
        {
            Type def = instrument.GetType().IsGenericType ? instrument.GetType().GetGenericTypeDefinition() : instrument.GetType();
            PrometheusMetricType type;
            Aggregation agg;
            if (def == typeof(Counter<>)) { type = PrometheusMetricType.Counter; agg = Aggregation.Sum; }
            else if (def == typeof(ObservableCounter<>)) { type = PrometheusMetricType.Counter; agg = Aggregation.LastValue; }
            else if (def == typeof(UpDownCounter<>)) { type = PrometheusMetricType.Gauge; agg = Aggregation.Sum; }
            else if (def == typeof(ObservableUpDownCounter<>) || def == typeof(ObservableGauge<>) || def == typeof(Gauge<>))
            { type = PrometheusMetricType.Gauge; agg = Aggregation.LastValue; }
            else if (def == typeof(Histogram<>)) { type = PrometheusMetricType.Histogram; agg = Aggregation.Histogram; }
            else return null;

            string name = PrometheusText.MetricName(instrument.Name, instrument.Unit, type, out double scale);
            double[] bounds = [];
            if (type == PrometheusMetricType.Histogram)
            {
                double[]? advice = AdviceBounds(instrument);
                if (advice is not null) { for (int i = 0; i < advice.Length; i++) advice[i] *= scale; }
                bounds = advice ?? (name.EndsWith("_seconds", StringComparison.Ordinal) ? options.LatencyBucketsSeconds : options.DefaultBuckets);
                bounds = NormaliseBounds(bounds);
            }
            string help = string.IsNullOrWhiteSpace(instrument.Description) ? instrument.Name : instrument.Description;
            if (scale != 1) help += $" (recorded in {instrument.Unit}, exported in seconds)";
            return new InstrumentState(name, PrometheusText.EscapeHelp(help), type, agg, instrument.IsObservable, scale, bounds,
                options.MaxSeriesPerInstrument);
        }

        private static double[]? AdviceBounds(Instrument instrument) => instrument switch
        {
            Histogram<double> h => h.Advice?.HistogramBucketBoundaries?.ToArray(),
            Histogram<float> h => h.Advice?.HistogramBucketBoundaries?.Select(static x => (double)x).ToArray(),
            Histogram<long> h => h.Advice?.HistogramBucketBoundaries?.Select(static x => (double)x).ToArray(),
            Histogram<int> h => h.Advice?.HistogramBucketBoundaries?.Select(static x => (double)x).ToArray(),
            _ => null,
        };

        private static double[] NormaliseBounds(double[] bounds)
        {
            var list = new List<double>(bounds.Length);
            foreach (double b in bounds)
                if (!double.IsNaN(b) && !double.IsInfinity(b)) list.Add(b);
            list.Sort();
            for (int i = list.Count - 1; i > 0; i--)
                if (list[i] == list[i - 1]) list.RemoveAt(i);
            return [.. list];
        }

        public void BeginObservation()
        {
            lock (_gate) { _series.Clear(); _overflow = null; }
        }

        public void Record(double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            if (double.IsNaN(value)) return;
            value *= _scale;
            if (_aggregation == Aggregation.Sum && _type == PrometheusMetricType.Counter && value < 0) return; // counters are monotonic
            // Hot label sets skip formatting and sorting their labels: a small cache matched on the tag objects
            // themselves (observable instruments replace their series at every scrape, so they do not use it).
            int slot = Observable ? -1 : (TagHash(tags) & int.MaxValue) % RecentSlots;
            Series? series = slot >= 0 && Volatile.Read(ref _recent[slot]) is { } recent && recent.Matches(tags) ? recent.Series : null;
            lock (_gate)
            {
                if (series is null)
                {
                    ReadOnlySpan<char> key = FormatLabels(tags);
                    if (!_lookup.TryGetValue(key, out series))
                    {
                        if (_series.Count < _maxSeries)
                        {
                            series = new Series(key.ToString(), _type == PrometheusMetricType.Histogram ? _bounds.Length + 1 : 0);
                            _series.Add(series.Labels, series);
                            // Cached when new (bounded by the series cap) or into a free slot: a slot two hot label sets
                            // share is not fought over, so a miss never allocates.
                            if (slot >= 0) Volatile.Write(ref _recent[slot], new RecentTags(tags.ToArray(), series));
                        }
                        else
                        {
                            series = _overflow ??= new Series(FormatLabels(tags, overflow: true).ToString(),
                                _type == PrometheusMetricType.Histogram ? _bounds.Length + 1 : 0);
                            Interlocked.Increment(ref OverflowCount);
                        }
                    }
                    else if (slot >= 0 && _recent[slot] is null)
                    {
                        Volatile.Write(ref _recent[slot], new RecentTags(tags.ToArray(), series));
                    }
                }
                switch (_aggregation)
                {
                    case Aggregation.Sum: series.Value += value; break;
                    case Aggregation.LastValue: series.Value = value; break;
                    default:
                        int i = Array.BinarySearch(_bounds, value);
                        if (i < 0) i = ~i; // first bound >= value: buckets are "less than or equal"
                        series.Buckets![i]++;
                        series.Sum += value;
                        series.Count++;
                        break;
                }
            }
        }

        public void Write(StringBuilder sb)
        {
            lock (_gate)
            {
                if (_series.Count == 0 && _overflow is null) return;
                sb.Append("# HELP ").Append(Name).Append(' ').Append(_help).Append('\n');
                sb.Append("# TYPE ").Append(Name).Append(' ').Append(_type switch
                {
                    PrometheusMetricType.Counter => "counter",
                    PrometheusMetricType.Gauge => "gauge",
                    _ => "histogram",
                }).Append('\n');
                foreach (var s in _series.Values) WriteSeries(sb, s);
                if (_overflow is not null) WriteSeries(sb, _overflow);
            }
        }

        private void WriteSeries(StringBuilder sb, Series s)
        {
            if (_type != PrometheusMetricType.Histogram)
            {
                sb.Append(Name);
                if (s.Labels.Length > 0) sb.Append('{').Append(s.Labels).Append('}');
                sb.Append(' ').Append(PrometheusText.FormatDouble(s.Value)).Append('\n');
                return;
            }
            long cumulative = 0;
            for (int i = 0; i <= _bounds.Length; i++)
            {
                cumulative += s.Buckets![i];
                sb.Append(Name).Append("_bucket{");
                if (s.Labels.Length > 0) sb.Append(s.Labels).Append(',');
                sb.Append("le=\"").Append(i < _bounds.Length ? PrometheusText.FormatDouble(_bounds[i]) : "+Inf").Append("\"} ")
                  .Append(cumulative.ToString(CultureInfo.InvariantCulture)).Append('\n');
            }
            string labels = s.Labels.Length > 0 ? "{" + s.Labels + "}" : "";
            sb.Append(Name).Append("_sum").Append(labels).Append(' ').Append(PrometheusText.FormatDouble(s.Sum)).Append('\n');
            sb.Append(Name).Append("_count").Append(labels).Append(' ').Append(s.Count.ToString(CultureInfo.InvariantCulture)).Append('\n');
        }
    }
}
