namespace Gateway.Core.Agents;

/// <summary>
/// Baseline: no retention hints (the engine's LRU prefix cache alone). Still scores gaps so shadow stats show how many
/// tool gaps went uncovered.
/// </summary>
public sealed class OffRetentionPolicy(TimeProvider time, int maxOpenGaps = 65_536, TimeSpan? maxSessionIdle = null, TimeSpan? maxSingleTurnIdle = null) : IRetentionPolicy
{
    /// <summary>Policy name.</summary>
    public const string PolicyName = "off";

    private readonly GapBook _book = new(time, 1.0, maxOpenGaps, maxGapAge: maxSessionIdle, singleTurnGapAge: maxSingleTurnIdle);

    /// <inheritdoc />
    public string Name => PolicyName;

    /// <inheritdoc />
    public RetentionStats Stats => _book.Stats;

    /// <inheritdoc />
    public void OnTurnCompleted(TurnCompletion turn, List<RetentionAction> actions)
    {
        ArgumentNullException.ThrowIfNull(turn);
        if (turn.SessionEnded)
        {
            _book.Abandon(turn.SessionId);
            return;
        }

        _book.Open(turn, 0, 0, double.NaN);
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
