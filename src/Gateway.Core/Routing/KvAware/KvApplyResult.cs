namespace Gateway.Core.Routing.KvAware;

/// <summary>What <see cref="PreciseIndex.Apply"/> did with an event.</summary>
public enum KvApplyResult
{
    /// <summary>Applied in order.</summary>
    Applied,

    /// <summary>Already seen (seq equal to the last applied one): ignored.</summary>
    Duplicate,

    /// <summary>A sequence gap (events were missed): the worker's set is stale until a snapshot is applied.</summary>
    GapNeedsResync,

    /// <summary>The worker is waiting for a snapshot; the event was not applied.</summary>
    AwaitingResync,

    /// <summary>The sequence went backwards or a cleared event arrived: the worker restarted and its set was reset.</summary>
    Reset,
}
