namespace Worker.Hosting;

/// <summary>Counts events per wall second over a sliding window of one-second buckets (thread-safe, tiny).</summary>
internal sealed class ThroughputMeter
{
    private readonly TimeProvider _time;
    private readonly long[] _counts;
    private readonly long[] _seconds;
    private readonly long _origin;
    private readonly Lock _gate = new();

    public ThroughputMeter(TimeProvider time, TimeSpan window)
    {
        _time = time;
        int n = Math.Max(1, (int)Math.Ceiling(window.TotalSeconds));
        _counts = new long[n];
        _seconds = new long[n];
        Array.Fill(_seconds, -1);
        _origin = time.GetTimestamp();
    }

    private long NowSecond() => (long)_time.GetElapsedTime(_origin).TotalSeconds;

    /// <summary>Adds <paramref name="count"/> events now.</summary>
    public void Add(int count)
    {
        if (count <= 0)
        {
            return;
        }

        long sec = NowSecond();
        int slot = (int)(sec % _counts.Length);
        lock (_gate)
        {
            if (_seconds[slot] != sec)
            {
                _seconds[slot] = sec;
                _counts[slot] = 0;
            }

            _counts[slot] += count;
        }
    }

    /// <summary>Events per second over the window (the current partial second included).</summary>
    public double Rate()
    {
        var elapsed = _time.GetElapsedTime(_origin).TotalSeconds;
        long sec = (long)elapsed;
        long total = 0;
        lock (_gate)
        {
            for (int i = 0; i < _counts.Length; i++)
            {
                if (_seconds[i] >= 0 && sec - _seconds[i] < _counts.Length)
                {
                    total += _counts[i];
                }
            }
        }

        double span = Math.Min(_counts.Length - 1 + (elapsed - sec), elapsed);
        return span <= 0 ? 0 : total / Math.Max(span, 1e-3);
    }
}
