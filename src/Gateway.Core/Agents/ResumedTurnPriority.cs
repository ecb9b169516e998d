namespace Gateway.Core.Agents;

/// <summary>Knobs of <see cref="ResumedTurnPriority"/>.</summary>
public sealed record ProgramPriorityOptions
{
    /// <summary>
    /// Worker waiting-queue priority of a resumed turn (fresh work has 0; the engine admits higher first, FCFS among
    /// equals). Sent as the <c>x-request-priority</c> hint header.
    /// </summary>
    public int EnginePriority { get; init; } = 1;

    /// <summary>Largest <see cref="EnginePriority"/>: the worker protocol accepts <c>x-request-priority</c> in [-1000, 1000].</summary>
    public const int MaxEnginePriority = 1000;

    /// <summary>
    /// Lag credit in the gateway queue, in hfair cost units (w_in · uncached prompt tokens + w_out · output tokens): the
    /// resumed turn's session is placed this far ahead of its least-served backlogged sibling inside the same tenant.
    /// The tenant's own place among tenants is untouched.
    /// </summary>
    public double QueueCredit { get; init; } = 4096;

    /// <summary>Only a tool gap at most this long makes a resumed turn: after a longer pause the program is as good as new.</summary>
    public double MaxGapSeconds { get; init; } = 300;

    /// <summary>
    /// Boost only resumed turns whose context a pin of the retention policy still covers (<see cref="ClosedGap.Pinned"/>):
    /// they are cheap to serve (mostly cached), and admitting them first turns the pin into use before the worker can drop
    /// it for other admissions. A turn whose context is gone costs a full prefill and waits like fresh work.
    /// </summary>
    public bool PinnedOnly { get; init; }
}

/// <summary>How a turn is ordered: <see cref="Fresh"/> (default) or resumed with its worker priority and queue credit.</summary>
/// <param name="Resumed">The turn continues a program after a tool call.</param>
/// <param name="EnginePriority">Worker waiting-queue priority (0: fresh).</param>
/// <param name="QueueCredit">Gateway-queue lag credit in cost units (0: fresh).</param>
public readonly record struct TurnPriority(bool Resumed, int EnginePriority, double QueueCredit)
{
    /// <summary>Fresh work: no boost.</summary>
    public static TurnPriority Fresh => default;
}

/// <summary>
/// Program-level ordering of resumed turns (issue 7), after Autellix (arXiv 2502.13965: schedule LLM calls by their
/// program, so a program's later calls do not queue behind programs that have not started; PLAS) and Continuum (arXiv
/// 2511.02230: program-level FCFS, a turn returning from a tool call keeps its program's place). A turn that closes a
/// tool gap (<see cref="ClosedGap.AfterTool"/>) is a resumed turn: its program already waited once, its context is
/// likely still cached or pinned on the worker that served the previous turn, and every second it waits keeps that pin
/// exposed to being dropped for other admissions. So it is served ahead of fresh work in two places, both bounded:
/// <list type="bullet">
/// <item>gateway queue: a lag credit of <see cref="ProgramPriorityOptions.QueueCredit"/> cost units inside its own
/// tenant's subtree (hfair places the session ahead of its siblings; the tenant's share among tenants is unchanged, so
/// a tenant gains nothing over other tenants by having turns marked resumed);</item>
/// <item>worker: <see cref="ProgramPriorityOptions.EnginePriority"/> in the engine's waiting queue (at most the few
/// requests a worker holds waiting are overtaken; admission order only, running sequences are never preempted for it).</item>
/// </list>
/// A tool gap longer than <see cref="ProgramPriorityOptions.MaxGapSeconds"/> gets nothing; with
/// <see cref="ProgramPriorityOptions.PinnedOnly"/> only turns whose pin still covers them are boosted. Stateless: the gap comes from
/// the retention policy's <see cref="IRetentionPolicy.OnTurnArrived"/>, which tracks sessions.
/// </summary>
public sealed class ResumedTurnPriority
{
    /// <summary>Creates the policy.</summary>
    public ResumedTurnPriority(ProgramPriorityOptions? options = null)
    {
        Options = options ?? new ProgramPriorityOptions();
        ArgumentOutOfRangeException.ThrowIfNegative(Options.EnginePriority);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(Options.EnginePriority, ProgramPriorityOptions.MaxEnginePriority);
        if (!(Options.QueueCredit >= 0) || double.IsInfinity(Options.QueueCredit))
        {
            throw new ArgumentOutOfRangeException(nameof(options), Options.QueueCredit, "QueueCredit must be a finite number >= 0");
        }

        if (!(Options.MaxGapSeconds > 0))
        {
            throw new ArgumentOutOfRangeException(nameof(options), Options.MaxGapSeconds, "MaxGapSeconds must be > 0");
        }
    }

    /// <summary>The knobs.</summary>
    public ProgramPriorityOptions Options { get; }

    /// <summary>The order of a turn that closed <paramref name="gap"/> (<see cref="ClosedGap.None"/>: a first turn, fresh).</summary>
    public TurnPriority Decide(ClosedGap gap) =>
        gap.AfterTool && gap.Seconds <= Options.MaxGapSeconds && (gap.Pinned || !Options.PinnedOnly)
            ? new TurnPriority(true, Options.EnginePriority, Options.QueueCredit)
            : TurnPriority.Fresh;
}
