namespace Simulator.Simulation;

/// <summary>Why a resumed turn re-prefilled part of the context its previous turn left behind.</summary>
public enum ReprefillCause
{
    /// <summary>Routed to a different worker than the previous turn's, which still held more of the context than the turn found where it went.</summary>
    Moved,

    /// <summary>The prefix had left the previous turn's worker (both tiers) when the turn arrived, wherever it was routed.</summary>
    EvictedBeforeArrival,

    /// <summary>Cached on arrival, evicted while the turn waited for admission.</summary>
    EvictedAfterArrival,
}

/// <summary>
/// Resumed turns (a session's turns after its first) of one gap kind: how many, how many of their tokens the previous
/// turn's prompt could have served, how many were re-prefilled, and that re-prefill split by cause and by what became
/// of the retention pin (<see cref="PinFate"/>). The diagnosis of a retention policy reads from here.
/// </summary>
public sealed class ResumedStats
{
    /// <summary>Resumed turns.</summary>
    public long Turns { get; private set; }

    /// <summary>Of those, turns that re-prefilled anything.</summary>
    public long TurnsWithReprefill { get; private set; }

    /// <summary>Tokens of the common prefix with the previous turn's prompt.</summary>
    public long ReusableTokens { get; private set; }

    /// <summary>Of those, tokens prefilled again.</summary>
    public long ReprefillTokens { get; private set; }

    /// <summary>Re-prefill by <see cref="ReprefillCause"/>.</summary>
    public long[] ByCause { get; } = new long[3];

    /// <summary>Re-prefill by <see cref="PinFate"/>.</summary>
    public long[] ByPinFate { get; } = new long[4];

    /// <summary>
    /// Why a resumed turn served on <paramref name="worker"/> with <paramref name="cached"/> tokens from cache lost part of
    /// its <paramref name="reusable"/> prefix, which the previous turn's <paramref name="previousWorker"/> still held
    /// <paramref name="cachedOnArrival"/> tokens of when it arrived: moved only where staying would have served more (a
    /// turn routed elsewhere after its context had left the previous worker lost nothing to routing).
    /// </summary>
    public static ReprefillCause CauseOf(int worker, int previousWorker, int cachedOnArrival, int cached, int reusable) =>
        worker != previousWorker && cachedOnArrival > cached ? ReprefillCause.Moved
        : cachedOnArrival < reusable ? ReprefillCause.EvictedBeforeArrival
        : ReprefillCause.EvictedAfterArrival;

    /// <summary>Counts one resumed turn.</summary>
    public void Add(long reusable, long reprefill, ReprefillCause cause, PinFate fate)
    {
        Turns++;
        ReusableTokens += reusable;
        if (reprefill <= 0)
        {
            return;
        }

        TurnsWithReprefill++;
        ReprefillTokens += reprefill;
        ByCause[(int)cause] += reprefill;
        ByPinFate[(int)fate] += reprefill;
    }
}
