namespace Gateway.Core.Scheduling;

/// <summary>
/// Knobs of locality within a fairness bound (the idea of DLPM, Cao et al. 2025, with an explicit bound).
/// A request is a locality candidate only if every node on its tenant path is within
/// <see cref="LagBound"/> cost units of service of its least-served backlogged sibling
/// (<c>(v(node) - min v(siblings)) x weight(node) &lt;= LagBound</c>). LagBound = 0 restricts picks to least-served nodes (ties included); within one leaf (a session or a
/// key's sessionless requests) locality may still reorder among the first <see cref="PerLeafCandidates"/> requests.
/// </summary>
public sealed record LocalityOptions
{
    /// <summary>Defaults: bound 4096 cost units, 64 candidates, 4 per leaf, a head skipped at most 8 times.</summary>
    public static LocalityOptions Default { get; } = new();

    /// <summary>Lag bound L in cost units (w_in x uncached prompt + w_out x output tokens).</summary>
    public double LagBound { get; init; } = 4096;

    /// <summary>Most requests whose affinity is evaluated per pick (bounds pick cost).</summary>
    public int MaxCandidates { get; init; } = 64;

    /// <summary>Requests looked at per leaf queue (FIFO order).</summary>
    public int PerLeafCandidates { get; init; } = 4;

    /// <summary>
    /// A request passed over this many times by locality picks is served next: as the strict fair pick it is then taken
    /// without a search, as its leaf's head it is then the leaf's only candidate. Bounds the wait beyond a request's fair
    /// turn in picks, on top of the lag bound in cost units (cheap cached requests could otherwise overtake many times).
    /// </summary>
    public int MaxHeadSkips { get; init; } = 8;
}
