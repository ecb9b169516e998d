using Gateway.Core.Routing;
using Gateway.Proxy;
using Polly;

namespace Gateway.Fleet;

/// <summary>
/// One worker as the gateway host tracks it: the Core <see cref="WorkerInfo"/> that routing policies read (load
/// charged at dispatch, last self-report), its base URL, served models, and the three inputs of its health:
/// active probes, passive request failures and its Polly circuit breaker. <see cref="WorkerInfo.Healthy"/> is
/// recomputed from those three whenever one changes. Thread-safe.
/// </summary>
public sealed class WorkerEndpoint
{
    private readonly Lock _lock = new();
    private int _probeFailures;
    private int _passiveFailures;
    private long _lastFailureTicks = long.MinValue;
    private bool _probeHealthy;
    private bool _passiveDown;
    private long _circuitOpenUntilTicks;

    internal WorkerEndpoint(Uri baseUri, int index, TimeProvider time)
    {
        BaseUri = baseUri;
        Prefix = baseUri.GetLeftPart(UriPartial.Authority);
        Info = new WorkerInfo(Prefix, index) { Healthy = false };
        Time = time;
    }

    /// <summary>Worker base URL.</summary>
    public Uri BaseUri { get; }

    /// <summary>Destination prefix handed to the forwarder (<c>http://host:port</c>).</summary>
    public string Prefix { get; }

    /// <summary>The routing view of this worker.</summary>
    public WorkerInfo Info { get; }

    /// <summary>Models the worker serves (from its /v1/models); empty until fetched.</summary>
    public IReadOnlyList<string> Models { get; internal set; } = [];

    /// <summary>When <see cref="Models"/> was last fetched.</summary>
    public DateTimeOffset ModelsFetchedAt { get; internal set; } = DateTimeOffset.MinValue;

    /// <summary>Retention pins live on the worker at its last state report.</summary>
    public int PinsActive { get; internal set; }

    /// <summary>Last reported <c>pins_dropped_total</c> (-1 before the first report): the baseline of the gateway's counter.</summary>
    internal long PinsDroppedSeen = -1;

    /// <summary>Last reported <c>pins_expired_total</c> (-1 before the first report).</summary>
    internal long PinsExpiredSeen = -1;

    /// <summary>False once the worker answered 404 to /worker/state (a plain OpenAI server): probe /healthz instead.</summary>
    public bool SupportsWorkerState { get; internal set; } = true;

    /// <summary>True while the worker's Polly circuit is open.</summary>
    public bool CircuitOpen => Time.GetUtcNow().UtcTicks < Volatile.Read(ref _circuitOpenUntilTicks);

    /// <summary>Result of the latest probe.</summary>
    public bool ProbeHealthy
    {
        get
        {
            lock (_lock)
            {
                return _probeHealthy;
            }
        }
    }

    /// <summary>Per-worker circuit breaker wrapped around each forwarding attempt.</summary>
    internal ResiliencePipeline<AttemptOutcome> Breaker { get; set; } = ResiliencePipeline<AttemptOutcome>.Empty;

    internal TimeProvider Time { get; }

    internal bool Removed { get; set; }

    /// <summary>
    /// Records a probe result. <paramref name="startedTicks"/> (UTC ticks when the probe was sent) guards against a
    /// stale success: a probe answered before a request then failed to connect says nothing about the worker now, so it
    /// does not clear that failure.
    /// </summary>
    internal void OnProbe(bool ok, int unhealthyThreshold, long startedTicks = long.MaxValue)
    {
        lock (_lock)
        {
            if (ok && startedTicks < _lastFailureTicks)
            {
                return;
            }

            if (ok)
            {
                _probeFailures = 0;
                _probeHealthy = true;
                _passiveDown = false;
                _passiveFailures = 0;
            }
            else if (++_probeFailures >= unhealthyThreshold || !_probeHealthy)
            {
                _probeHealthy = false;
            }

            Recompute();
        }
    }

    /// <summary>A request to this worker failed in a way that is the worker's fault (connect failure, 5xx, stream cut).</summary>
    internal void OnRequestFailure(bool connectFailure, int passiveThreshold)
    {
        lock (_lock)
        {
            _lastFailureTicks = Time.GetUtcNow().UtcTicks;
            if (connectFailure || ++_passiveFailures >= passiveThreshold)
            {
                _passiveDown = true;
            }

            Recompute();
        }
    }

    /// <summary>A request to this worker succeeded.</summary>
    internal void OnRequestSuccess()
    {
        if (Volatile.Read(ref _passiveFailures) == 0)
        {
            return;
        }

        lock (_lock)
        {
            _passiveFailures = 0;
        }
    }

    internal void OnCircuitOpened(TimeSpan breakDuration)
    {
        lock (_lock)
        {
            Volatile.Write(ref _circuitOpenUntilTicks, Time.GetUtcNow().UtcTicks + breakDuration.Ticks);
            Recompute();
        }
    }

    internal void OnCircuitClosed()
    {
        lock (_lock)
        {
            Volatile.Write(ref _circuitOpenUntilTicks, 0);
            Recompute();
        }
    }

    /// <summary>Re-evaluates eligibility (an open circuit's break may have elapsed).</summary>
    internal void Refresh()
    {
        lock (_lock)
        {
            Recompute();
        }
    }

    private void Recompute() => Info.Healthy = _probeHealthy && !_passiveDown && !CircuitOpen && !Removed;
}
