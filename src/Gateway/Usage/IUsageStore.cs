using System.Collections.Concurrent;

namespace Gateway.Usage;

/// <summary>Token usage of one tenant (cumulative).</summary>
public readonly record struct UsageTotals(long Requests, long PromptTokens, long CachedTokens, long CompletionTokens);

/// <summary>
/// Per-tenant usage accounting (prompt, cached and completion tokens). In-memory by default; the fairness issue
/// adds a Redis-backed implementation shared by replicas.
/// </summary>
public interface IUsageStore
{
    /// <summary>Adds one finished request's usage to <paramref name="tenantPath"/>.</summary>
    void Record(string tenantPath, int promptTokens, int cachedTokens, int completionTokens);

    /// <summary>Totals of one tenant (zero when unknown).</summary>
    UsageTotals Get(string tenantPath);

    /// <summary>Every tenant's totals.</summary>
    IReadOnlyDictionary<string, UsageTotals> Snapshot();
}

/// <summary>Process-local usage store (lock-free per tenant).</summary>
public sealed class InMemoryUsageStore : IUsageStore
{
    private readonly ConcurrentDictionary<string, Counters> _tenants = new(StringComparer.Ordinal);

    /// <inheritdoc />
    public void Record(string tenantPath, int promptTokens, int cachedTokens, int completionTokens)
    {
        var c = _tenants.GetOrAdd(tenantPath, static _ => new Counters());
        Interlocked.Increment(ref c.Requests);
        Interlocked.Add(ref c.Prompt, promptTokens);
        Interlocked.Add(ref c.Cached, cachedTokens);
        Interlocked.Add(ref c.Completion, completionTokens);
    }

    /// <inheritdoc />
    public UsageTotals Get(string tenantPath) => _tenants.TryGetValue(tenantPath, out var c) ? c.ToTotals() : default;

    /// <inheritdoc />
    public IReadOnlyDictionary<string, UsageTotals> Snapshot()
    {
        var d = new Dictionary<string, UsageTotals>(StringComparer.Ordinal);
        foreach (var (k, v) in _tenants)
        {
            d[k] = v.ToTotals();
        }

        return d;
    }

    private sealed class Counters
    {
        public long Requests;
        public long Prompt;
        public long Cached;
        public long Completion;

        public UsageTotals ToTotals() => new(Volatile.Read(ref Requests), Volatile.Read(ref Prompt), Volatile.Read(ref Cached), Volatile.Read(ref Completion));
    }
}
