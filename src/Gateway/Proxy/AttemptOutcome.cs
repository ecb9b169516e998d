namespace Gateway.Proxy;

/// <summary>How one forwarding attempt ended.</summary>
public enum AttemptKind
{
    /// <summary>Answer delivered (any status the worker chose that is not retried, e.g. 200 or 400).</summary>
    Delivered,

    /// <summary>Could not connect / send (nothing reached the client).</summary>
    ConnectFailed,

    /// <summary>Worker answered 5xx before the first byte reached the client.</summary>
    ServerError,

    /// <summary>Worker answered 429 before the first byte reached the client.</summary>
    Throttled,

    /// <summary>Worker failed after its headers but before the first byte reached the client.</summary>
    DiedBeforeFirstByte,

    /// <summary>No first byte within the first-byte timeout.</summary>
    FirstByteTimeout,

    /// <summary>The worker's stream broke after bytes reached the client (ended with an error event).</summary>
    DiedMidStream,

    /// <summary>The worker's circuit was open.</summary>
    CircuitOpen,

    /// <summary>The worker answered 503 because it is draining (not a fault: it is stopping on purpose).</summary>
    Draining,

    /// <summary>No eligible worker serves the model.</summary>
    NoWorker,

    /// <summary>The client went away.</summary>
    ClientAborted,
}

/// <summary>Result of one attempt, as the retry and breaker strategies see it.</summary>
public sealed record AttemptOutcome(AttemptKind Kind, int UpstreamStatus = 0, string? Detail = null, TimeSpan? RetryAfter = null)
{
    /// <summary>Reusable success value.</summary>
    public static AttemptOutcome Delivered { get; } = new(AttemptKind.Delivered);

    /// <summary>Retried on another worker (only ever before the first byte reached the client).</summary>
    public bool Retryable => Kind is AttemptKind.ConnectFailed or AttemptKind.ServerError or AttemptKind.Throttled
        or AttemptKind.DiedBeforeFirstByte or AttemptKind.CircuitOpen or AttemptKind.Draining;

    /// <summary>Counts against the worker's circuit breaker and passive health.</summary>
    public bool IsWorkerFault => Kind is AttemptKind.ConnectFailed or AttemptKind.ServerError or AttemptKind.DiedBeforeFirstByte
        or AttemptKind.DiedMidStream or AttemptKind.FirstByteTimeout;
}
