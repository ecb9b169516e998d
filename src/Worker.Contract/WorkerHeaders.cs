namespace Worker.Contract;

/// <summary>Hint headers the gateway sends a worker with a generation request, and the one a worker answers with.</summary>
public static class WorkerHeaders
{
    /// <summary>Session id: retain-by-session pins the blocks of the session's most recent request.</summary>
    public const string SessionId = "x-session-id";

    /// <summary>Per-tenant cache salt, mixed into every block hash so tenants never share cached KV.</summary>
    public const string CacheSalt = "x-cache-salt";

    /// <summary>Milliseconds to keep the prompt's cached blocks pinned after the request finishes.</summary>
    public const string RetentionTtl = "x-retention-ttl-ms";

    /// <summary>Waiting-queue priority on the worker (higher admitted first; resumed agent turns).</summary>
    public const string RequestPriority = "x-request-priority";

    /// <summary>Sent by a draining worker with its 503: retry elsewhere, and route nothing new to it.</summary>
    public const string WorkerDraining = "x-worker-draining";
}
