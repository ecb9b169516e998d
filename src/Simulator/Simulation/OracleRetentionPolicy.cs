using Gateway.Core.Agents;

namespace Simulator.Simulation;

/// <summary>
/// <c>oracle[:SECONDS]</c> (simulator only, a clairvoyant reference, never a gateway option): told each session's next
/// think time by the run loop, it pins every gap that ends within <see cref="HorizonSeconds"/> for exactly that gap plus
/// <see cref="MarginSeconds"/>, with value = the context's prefill seconds per block per second held, so the engine drops
/// the pin whose return is furthest away (per block) first — Belady's order on pins. What it cannot know: how long a
/// parent waits for sub-agents beyond its own think time, and how long the returning turn queues (the planner's in-flight
/// pin covers that, as for every policy). It answers "does knowing the gap exactly help?" — it is a greedy per-gap rule,
/// not an offline optimum, and (docs/policies/agent-retention.md) it does worse than <c>predictive</c>.
/// </summary>
public sealed class OracleRetentionPolicy(TimeProvider time, double horizonSeconds = 300) : IRetentionPolicy
{
    /// <summary>Policy name (also <c>oracle:SECONDS</c>, the horizon).</summary>
    public const string PolicyName = "oracle";

    /// <summary>
    /// Parses <c>oracle</c> or <c>oracle:SECONDS</c> (0 &lt; SECONDS ≤ 86,400) into a policy; null for any other name.
    /// </summary>
    public static OracleRetentionPolicy? TryCreate(string name, TimeProvider time)
    {
        if (name == PolicyName)
        {
            return new OracleRetentionPolicy(time);
        }

        return name.StartsWith(PolicyName + ":", StringComparison.Ordinal) &&
               double.TryParse(name.AsSpan(PolicyName.Length + 1), System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out double h) &&
               h > 0 && h <= 86_400
            ? new OracleRetentionPolicy(time, h)
            : null;
    }

    private readonly Dictionary<string, (DateTimeOffset Opened, GapKind Kind, DateTimeOffset Until)> _open = new(StringComparer.Ordinal);

    /// <summary>Gaps longer than this are not pinned (the name's <c>:SECONDS</c>; default 300).</summary>
    public double HorizonSeconds { get; } = horizonSeconds;

    /// <summary>Seconds added to the known think time.</summary>
    public double MarginSeconds { get; init; } = 1;

    /// <summary>The next think time of the session whose turn is being completed (set by the planner; NaN: unknown).</summary>
    public double NextGapSeconds { get; set; } = double.NaN;

    /// <inheritdoc />
    public string Name { get; } = horizonSeconds == 300 ? PolicyName : PolicyName + ":" + horizonSeconds.ToString("G", System.Globalization.CultureInfo.InvariantCulture);

    /// <inheritdoc />
    public RetentionStats Stats { get; } = new();

    /// <inheritdoc />
    public void OnTurnCompleted(TurnCompletion turn, List<RetentionAction> actions)
    {
        ArgumentNullException.ThrowIfNull(turn);
        ArgumentNullException.ThrowIfNull(actions);
        var now = time.GetUtcNow();
        double gap = NextGapSeconds;
        if (turn.SessionEnded || double.IsNaN(gap) || gap > HorizonSeconds || turn.Blocks == 0)
        {
            actions.Add(new RetentionAction(RetentionActionKind.Release, turn.SessionId, turn.Worker, 0, 0, 0));
            if (turn.SessionEnded)
            {
                _open.Remove(turn.SessionId);
            }
            else
            {
                _open[turn.SessionId] = (now, turn.Outcome.Gap, now);
            }

            return;
        }

        double hold = gap + MarginSeconds;
        _open[turn.SessionId] = (now, turn.Outcome.Gap, now + TimeSpan.FromSeconds(hold));
        double value = turn.PrefillSeconds / turn.Blocks / hold;
        actions.Add(new RetentionAction(RetentionActionKind.Retain, turn.SessionId, turn.Worker, (long)Math.Ceiling(hold * 1000), value, 0));
    }

    /// <inheritdoc />
    public ClosedGap OnTurnArrived(string sessionId, int priorTurns = -1)
    {
        if (!_open.Remove(sessionId, out var g))
        {
            return ClosedGap.None;
        }

        var now = time.GetUtcNow();
        return new ClosedGap(true, g.Kind, (now - g.Opened).TotalSeconds, now <= g.Until && g.Until > g.Opened);
    }

    /// <inheritdoc />
    public DateTimeOffset? NextPinExpiry => null; // pins exactly to the known gap: nothing to renew

    /// <inheritdoc />
    public void OnPinsExpiring(DateTimeOffset dueBy, List<RetentionAction> actions)
    {
    }

    /// <inheritdoc />
    public void OnPinDropped(string sessionId, int worker)
    {
        var now = time.GetUtcNow();
        if (_open.TryGetValue(sessionId, out var g) && g.Until > now)
        {
            _open[sessionId] = g with { Until = now }; // the pin ended here: a later return was not covered
        }
    }
}
