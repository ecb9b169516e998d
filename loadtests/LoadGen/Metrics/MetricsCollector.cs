using System.Collections.Concurrent;

namespace LoadGen.Metrics;

/// <summary>
/// Collects every request's result and keeps live counters per tenant for the progress display.
/// <see cref="Issued"/> − <see cref="Recorded"/> is the number of requests without an outcome ("no answer"):
/// the runner guarantees it is zero at the end of a run.
/// </summary>
public sealed class MetricsCollector
{
    private readonly ConcurrentQueue<RequestResult> _results = new();
    private readonly ConcurrentDictionary<string, TenantLive> _live = new(StringComparer.Ordinal);
    private long _issued;
    private long _recorded;

    /// <summary>Requests started.</summary>
    public long Issued => Interlocked.Read(ref _issued);

    /// <summary>Requests that ended with an outcome.</summary>
    public long Recorded => Interlocked.Read(ref _recorded);

    /// <summary>Requests in flight.</summary>
    public long InFlight => Issued - Recorded;

    /// <summary>All results so far (a snapshot).</summary>
    public IReadOnlyList<RequestResult> Results => _results.ToArray();

    /// <summary>Live counters by tenant (snapshot of the keys).</summary>
    public IReadOnlyDictionary<string, TenantLive> Live => _live;

    /// <summary>Counts a started request; returns its sequence number.</summary>
    public long OnIssued(string tenant)
    {
        _live.GetOrAdd(tenant, static _ => new TenantLive()).OnIssued();
        return Interlocked.Increment(ref _issued);
    }

    /// <summary>Records a finished request (exactly once per issued request).</summary>
    public void OnRecorded(RequestResult r)
    {
        ArgumentNullException.ThrowIfNull(r);
        _results.Enqueue(r);
        _live.GetOrAdd(r.Tenant, static _ => new TenantLive()).OnRecorded(r);
        Interlocked.Increment(ref _recorded);
    }
}

/// <summary>Live per-tenant counters (thread-safe) and a window of recent TTFTs.</summary>
public sealed class TenantLive
{
    private const int Window = 256;
    private readonly double[] _recentTtft = new double[Window];
    private long _issued;
    private long _ok;
    private long _error;
    private long _outputTokens;
    private int _next;
    private int _filled;

    /// <summary>Requests started.</summary>
    public long Issued => Interlocked.Read(ref _issued);

    /// <summary>Requests answered.</summary>
    public long Ok => Interlocked.Read(ref _ok);

    /// <summary>Requests that ended in an error.</summary>
    public long Error => Interlocked.Read(ref _error);

    /// <summary>Output tokens received.</summary>
    public long OutputTokens => Interlocked.Read(ref _outputTokens);

    internal void OnIssued() => Interlocked.Increment(ref _issued);

    internal void OnRecorded(RequestResult r)
    {
        if (r.Outcome == Outcome.Ok)
        {
            Interlocked.Increment(ref _ok);
        }
        else
        {
            Interlocked.Increment(ref _error);
        }

        Interlocked.Add(ref _outputTokens, r.OutputTokens);
        if (r.TtftMs is double t)
        {
            lock (_recentTtft)
            {
                _recentTtft[_next] = t;
                _next = (_next + 1) % Window;
                _filled = Math.Min(_filled + 1, Window);
            }
        }
    }

    /// <summary>Median TTFT of the last 256 answered requests (ms), 0 if none.</summary>
    public double RecentTtftP50()
    {
        double[] copy;
        lock (_recentTtft)
        {
            copy = _recentTtft[.._filled];
        }

        return LatencySummary.Of(copy).P50;
    }
}
