using System.Globalization;

namespace Gateway.Core.Agents;

/// <summary>
/// Baseline: a fixed TTL on every tool gap (Continuum's released code pins 2 s; vLLM/Dynamo-style idle timeouts), value =
/// the context's prefill seconds; release on a human gap or session end. Knob: the TTL in seconds.
/// </summary>
public sealed class FixedRetentionPolicy : IRetentionPolicy
{
    /// <summary>Name prefix: "fixed:SECONDS".</summary>
    public const string Prefix = "fixed:";

    private readonly GapBook _book;
    private readonly double _ttl;

    /// <summary>Creates the policy.</summary>
    public FixedRetentionPolicy(TimeProvider time, double ttlSeconds, int maxOpenGaps = 65_536, TimeSpan? maxSessionIdle = null, TimeSpan? maxSingleTurnIdle = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(ttlSeconds, 0.0);
        _ttl = ttlSeconds;
        _book = new GapBook(time, 1.0, maxOpenGaps, maxGapAge: maxSessionIdle, singleTurnGapAge: maxSingleTurnIdle);
        Name = Prefix + ttlSeconds.ToString("G", CultureInfo.InvariantCulture);
    }

    /// <inheritdoc />
    public string Name { get; }

    /// <inheritdoc />
    public RetentionStats Stats => _book.Stats;

    /// <inheritdoc />
    public void OnTurnCompleted(TurnCompletion turn, List<RetentionAction> actions)
    {
        ArgumentNullException.ThrowIfNull(turn);
        ArgumentNullException.ThrowIfNull(actions);
        if (turn.SessionEnded || turn.Outcome.Gap == GapKind.Human)
        {
            actions.Add(new RetentionAction(RetentionActionKind.Release, turn.SessionId, turn.Worker, 0, 0, 0));
            _book.Stats.Releases++;
            if (turn.SessionEnded)
            {
                _book.Abandon(turn.SessionId);
            }
            else
            {
                _book.Open(turn, 0, 0, double.NaN);
            }

            return;
        }

        _book.Open(turn, _ttl, turn.PrefillSeconds, double.NaN);
        actions.Add(new RetentionAction(RetentionActionKind.Retain, turn.SessionId, turn.Worker, (long)Math.Ceiling(_ttl * 1000), turn.PrefillSeconds, 0));
    }

    /// <inheritdoc />
    public ClosedGap OnTurnArrived(string sessionId, int priorTurns = -1) => _book.Close(sessionId, priorTurns, out _, out _);

    /// <inheritdoc />
    public DateTimeOffset? NextPinExpiry => null;

    /// <inheritdoc />
    public void OnPinsExpiring(DateTimeOffset dueBy, List<RetentionAction> actions)
    {
    }

    /// <inheritdoc />
    public void OnPinDropped(string sessionId, int worker) => _book.Dropped(sessionId, worker);
}
