using System.Net.Http.Json;
using System.Text.Json;
using Gateway.Core.Collections;
using Gateway.Fleet;
using Worker.Contract;

namespace Gateway.Agents;

/// <summary>
/// Sends <c>POST /worker/kv/prefetch</c> for idle agent contexts ahead of their predicted return (KVFlow-style): the
/// predictive policy decides, on a worker with a host tier, when the context should be back in HBM; this class waits
/// that long on the gateway's <see cref="TimeProvider"/> and asks the worker that holds the context to copy it back.
/// <list type="bullet">
/// <item>A session has at most one pending prefetch: a newer decision replaces it, and the session's next turn cancels it
/// (<see cref="Cancel"/>: the turn came first, the worker reloads on demand).</item>
/// <item>Budget: at most <c>maxPending</c> prefetches wait at once (the oldest is dropped for a new one); a prefetch is not
/// sent to a worker that is draining, unhealthy or reports no allocatable block; <c>max_blocks</c> is the context's
/// length, and the worker itself only uses memory that its running and queued requests do not need
/// (docs/worker-protocol.md, <c>budget_blocks</c>), so a prefetch never evicts running work.</item>
/// </list>
/// Thread-safe.
/// </summary>
public sealed partial class PrefetchScheduler : IDisposable
{
    private readonly object _lock = new();
    private readonly HttpClient _http;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly BoundedMap<string, Pending> _pending;
    private readonly HashSet<Pending> _timers = []; // every pending prefetch's timer, disposed with the scheduler
    private bool _disposed;
    private long _scheduled, _sent, _loadedBlocks, _failed, _cancelled, _skipped, _dropped;

    /// <summary>Creates a scheduler that sends with <paramref name="http"/> (not owned).</summary>
    public PrefetchScheduler(HttpClient http, TimeProvider time, int maxPending, ILogger logger)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxPending, 1);
        _http = http;
        _time = time;
        _logger = logger;
        _pending = new BoundedMap<string, Pending>(maxPending, StringComparer.Ordinal, evicted: (_, p) =>
        {
            Stop(p);
            Interlocked.Increment(ref _dropped);
        });
    }

    /// <summary>Prefetches waiting for their time.</summary>
    public int PendingCount
    {
        get
        {
            lock (_lock)
            {
                return _pending.Count;
            }
        }
    }

    /// <summary>Counters: scheduled, sent, blocks the workers copied back, failed, cancelled by the session's turn, skipped (no room / worker gone), dropped for the pending cap.</summary>
    public (long Scheduled, long Sent, long LoadedBlocks, long Failed, long Cancelled, long Skipped, long Dropped) Counts =>
        (Interlocked.Read(ref _scheduled), Interlocked.Read(ref _sent), Interlocked.Read(ref _loadedBlocks), Interlocked.Read(ref _failed),
         Interlocked.Read(ref _cancelled), Interlocked.Read(ref _skipped), Interlocked.Read(ref _dropped));

    /// <summary>
    /// Schedules the prefetch of <paramref name="session"/>'s context on <paramref name="worker"/> after
    /// <paramref name="delay"/>, replacing the session's pending one. The worker knows the context by
    /// <paramref name="workerSession"/> (the x-session-id it was sent) or, when null, by <paramref name="hashes"/>.
    /// </summary>
    public void Schedule(string session, WorkerEndpoint worker, string? workerSession, ulong[] hashes, TimeSpan delay)
    {
        ArgumentNullException.ThrowIfNull(session);
        ArgumentNullException.ThrowIfNull(worker);
        ArgumentNullException.ThrowIfNull(hashes);
        if (workerSession is null && hashes.Length == 0)
        {
            return;
        }

        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }

            CancelUnlocked(session, counted: false);
            var pending = new Pending(session, worker, workerSession, hashes);
            pending.Timer = _time.CreateTimer(static s => ((Pending)s!).Owner!.Fire((Pending)s!), pending, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
            pending.Owner = this;
            _timers.Add(pending);
            _pending.Set(session, pending);
            pending.Timer.Change(delay < TimeSpan.Zero ? TimeSpan.Zero : delay, Timeout.InfiniteTimeSpan);
            Interlocked.Increment(ref _scheduled);
        }
    }

    /// <summary>The session's next turn arrived (or it ended): its pending prefetch is not sent. True if there was one.</summary>
    public bool Cancel(string session)
    {
        lock (_lock)
        {
            return CancelUnlocked(session, counted: true);
        }
    }

    private bool CancelUnlocked(string session, bool counted)
    {
        if (!_pending.Remove(session, out var p))
        {
            return false;
        }

        Stop(p);
        if (counted)
        {
            Interlocked.Increment(ref _cancelled);
        }

        return true;
    }

    private void Fire(Pending p)
    {
        lock (_lock)
        {
            // Only the prefetch still registered for its session is sent (a replaced or cancelled one may fire late).
            if (!_pending.TryGetValue(p.Session, out var current) || !ReferenceEquals(current, p))
            {
                return;
            }

            _pending.Remove(p.Session, out _);
            Stop(p);
        }

        var info = p.Worker.Info;
        if (!info.Eligible || info.KvBlocksFree == 0)
        {
            Interlocked.Increment(ref _skipped);
            return;
        }

        _ = SendAsync(p);
    }

    private async Task SendAsync(Pending p)
    {
        try
        {
            var body = new PrefetchBody
            {
                SessionId = p.WorkerSession,
                BlockHashes = p.WorkerSession is null ? p.Hashes : null,
                MaxBlocks = p.Hashes.Length > 0 ? p.Hashes.Length : null,
            };
            using var response = await _http.PostAsJsonAsync(new Uri(p.Worker.BaseUri, "worker/kv/prefetch"), body, WorkerContractJson.Default.PrefetchBody).ConfigureAwait(false);
            Interlocked.Increment(ref _sent);
            if (!response.IsSuccessStatusCode)
            {
                Interlocked.Increment(ref _failed);
                Log.PrefetchFailed(_logger, p.Worker.Prefix, (int)response.StatusCode);
                return;
            }

            var reply = await response.Content.ReadFromJsonAsync(WorkerContractJson.Default.PrefetchReply).ConfigureAwait(false);
            if (reply is { LoadedBlocks: > 0 })
            {
                Interlocked.Add(ref _loadedBlocks, reply.LoadedBlocks);
            }
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException or OperationCanceledException or JsonException)
        {
            Interlocked.Increment(ref _failed);
            Log.PrefetchFailed(_logger, p.Worker.Prefix, 0);
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        lock (_lock)
        {
            _disposed = true;
            foreach (var p in _timers)
            {
                p.Timer.Dispose();
            }

            _timers.Clear();
        }
    }

    private void Stop(Pending p)
    {
        p.Timer.Dispose();
        _timers.Remove(p);
    }

    private sealed class Pending(string session, WorkerEndpoint worker, string? workerSession, ulong[] hashes)
    {
        public string Session { get; } = session;
        public WorkerEndpoint Worker { get; } = worker;
        public string? WorkerSession { get; } = workerSession;
        public ulong[] Hashes { get; } = hashes;
        public ITimer Timer { get; set; } = null!;
        public PrefetchScheduler? Owner { get; set; }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = EventIds.AgentPrefetchFailed, Level = LogLevel.Warning, Message = "agent prefetch to {Worker} failed (status {Status})")]
        public static partial void PrefetchFailed(ILogger logger, string worker, int status);
    }
}
