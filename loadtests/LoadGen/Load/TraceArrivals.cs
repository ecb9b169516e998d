using System.Globalization;
using System.Text.Json;

namespace LoadGen.Load;

/// <summary>
/// Arrival times read from a recorded trace, for <see cref="LoadSimulation.InjectAt"/>: Mooncake JSONL
/// (<c>timestamp</c> in ms from the trace start) or the Azure LLM inference CSV (<c>TIMESTAMP</c> wall clock).
/// Offsets are relative to the first arrival and divided by <c>speedup</c>; those past <c>window</c> are dropped.
/// </summary>
public static class TraceArrivals
{
    /// <summary>Reads the arrival offsets of <paramref name="path"/>.</summary>
    public static IReadOnlyList<TimeSpan> Load(string path, double speedup, TimeSpan window)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(speedup);
        var seconds = new List<double>();
        bool csv = path.EndsWith(".csv", StringComparison.OrdinalIgnoreCase);
        long baseTicks = long.MinValue; // CSV: wall-clock ticks relative to the first row, to keep double precision
        foreach (string line in File.ReadLines(path))
        {
            if (line.Length == 0)
            {
                continue;
            }

            if (csv)
            {
                int comma = line.IndexOf(',', StringComparison.Ordinal);
                if (comma > 0 && DateTime.TryParse(line.AsSpan(0, comma), CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var t))
                {
                    if (baseTicks == long.MinValue)
                    {
                        baseTicks = t.Ticks;
                    }

                    seconds.Add((t.Ticks - baseTicks) / (double)TimeSpan.TicksPerSecond);
                }

                continue; // header or unparsable line
            }

            try
            {
                using var doc = JsonDocument.Parse(line);
                if (doc.RootElement.TryGetProperty("timestamp", out var ts) && ts.TryGetDouble(out double ms))
                {
                    seconds.Add(ms / 1000.0);
                }
            }
            catch (JsonException e)
            {
                throw new ArgumentException($"{path}: a line is not JSON ({e.Message})", e);
            }
        }

        if (seconds.Count == 0)
        {
            throw new ArgumentException($"no arrival timestamps in {path} (expected Mooncake JSONL 'timestamp' or Azure CSV 'TIMESTAMP')");
        }

        seconds.Sort();
        double first = seconds[0];
        var offsets = new List<TimeSpan>(seconds.Count);
        foreach (double s in seconds)
        {
            var offset = TimeSpan.FromSeconds((s - first) / speedup);
            if (offset > window)
            {
                break;
            }

            offsets.Add(offset);
        }

        return offsets;
    }

    /// <summary>
    /// <paramref name="factor"/> times the arrivals of <paramref name="offsets"/> over the same span, for a flow that
    /// must send k times the others' load from one trace (noisy-neighbour): floor(k) copies, copy c shifted cyclically
    /// by c / ceil(k) of the period (span + one mean gap), plus for a fractional k one more copy evenly thinned to that
    /// fraction. The trace's own burst shape and time scale survive; k = 1 returns the input. Deterministic.
    /// </summary>
    public static IReadOnlyList<TimeSpan> Scale(IReadOnlyList<TimeSpan> offsets, double factor)
    {
        ArgumentNullException.ThrowIfNull(offsets);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(factor);
        if (factor == 1 || offsets.Count == 0)
        {
            return offsets;
        }

        int n = offsets.Count;
        var first = offsets[0];
        var span = offsets[^1] - first;
        var period = n > 1 && span > TimeSpan.Zero ? span + span / (n - 1) : TimeSpan.FromSeconds(1);
        int whole = (int)Math.Floor(factor);
        double fraction = factor - whole;
        int copies = whole + (fraction > 0 ? 1 : 0);
        var result = new List<TimeSpan>((int)Math.Ceiling(n * factor) + 1);
        for (int c = 0; c < copies; c++)
        {
            var shift = period * c / copies;
            bool thinned = c == whole; // the fractional copy
            for (int j = 0; j < n; j++)
            {
                if (thinned && Math.Floor((j + 1) * fraction) == Math.Floor(j * fraction))
                {
                    continue;
                }

                var t = offsets[j] - first + shift;
                if (t >= period)
                {
                    t -= period;
                }

                result.Add(first + t);
            }
        }

        result.Sort();
        return result;
    }
}
