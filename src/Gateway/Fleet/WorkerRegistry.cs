using Gateway.Configuration;
using Gateway.Core.Routing;
using Gateway.Proxy;
using Gateway.Telemetry;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Polly;
using Polly.CircuitBreaker;

namespace Gateway.Fleet;

/// <summary>The workers serving one model, as parallel arrays (routing policies take the <see cref="WorkerInfo"/> list).</summary>
public sealed class WorkerCandidates(WorkerEndpoint[] endpoints)
{
    /// <summary>Endpoints.</summary>
    public WorkerEndpoint[] Endpoints { get; } = endpoints;

    /// <summary>Their routing views, same order.</summary>
    public WorkerInfo[] Infos { get; } = Array.ConvertAll(endpoints, e => e.Info);

    /// <summary>Empty set.</summary>
    public static WorkerCandidates Empty { get; } = new([]);
}

/// <summary>
/// The fleet: worker endpoints added and removed by discovery (static list, DNS, embedded), per-model candidate
/// lists rebuilt when membership or model lists change, and the union of models for /v1/models. Reads are
/// lock-free on immutable snapshots; writes are rare and take a lock.
/// </summary>
public sealed partial class WorkerRegistry
{
    private readonly Lock _lock = new();
    private readonly GatewayOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger<WorkerRegistry> _logger;
    private readonly GatewayMetrics? _metrics;
    private WorkerEndpoint[] _all = [];
    private Dictionary<string, WorkerCandidates> _byModel = new(StringComparer.Ordinal);
    private string[] _models = [];
    private int _nextIndex;
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Creates an empty registry.</summary>
    public WorkerRegistry(IOptions<GatewayOptions> options, TimeProvider time, ILogger<WorkerRegistry> logger, GatewayMetrics? metrics = null)
    {
        _metrics = metrics;
        _options = options.Value;
        _time = time;
        _logger = logger;
    }

    /// <summary>Every known worker.</summary>
    public IReadOnlyList<WorkerEndpoint> All => Volatile.Read(ref _all);

    /// <summary>Union of the fleet's models, sorted.</summary>
    public IReadOnlyList<string> Models => Volatile.Read(ref _models);

    /// <summary>True when at least one worker is eligible.</summary>
    public bool AnyEligible
    {
        get
        {
            foreach (var w in Volatile.Read(ref _all))
            {
                if (w.Info.Eligible)
                {
                    return true;
                }
            }

            return false;
        }
    }

    /// <summary>Workers serving <paramref name="model"/> (empty when none).</summary>
    public WorkerCandidates GetCandidates(string model) =>
        Volatile.Read(ref _byModel).TryGetValue(model, out var c) ? c : WorkerCandidates.Empty;

    /// <summary>Whether any worker (healthy or not) serves <paramref name="model"/>.</summary>
    public bool KnowsModel(string model) => Volatile.Read(ref _byModel).ContainsKey(model);

    /// <summary>Completes when membership or model lists change next.</summary>
    public Task WaitForChangeAsync() => Volatile.Read(ref _changed).Task;

    /// <summary>Replaces the membership with <paramref name="urls"/> (existing workers keep their state).</summary>
    public void SetWorkers(IEnumerable<Uri> urls)
    {
        lock (_lock)
        {
            var wanted = new Dictionary<string, Uri>(StringComparer.OrdinalIgnoreCase);
            foreach (var u in urls)
            {
                wanted[u.GetLeftPart(UriPartial.Authority)] = u;
            }

            var next = new List<WorkerEndpoint>(wanted.Count);
            foreach (var e in _all)
            {
                if (wanted.Remove(e.Prefix))
                {
                    next.Add(e);
                }
                else
                {
                    e.Removed = true;
                    e.Refresh();
                    Log.WorkerRemoved(_logger, e.Prefix);
                }
            }

            foreach (var u in wanted.Values)
            {
                var e = new WorkerEndpoint(u, _nextIndex++, _time);
                e.Breaker = BuildBreaker(e);
                next.Add(e);
                Log.WorkerAdded(_logger, e.Prefix);
            }

            Volatile.Write(ref _all, next.ToArray());
            RebuildLocked();
        }
    }

    /// <summary>Called by the prober when a worker's model list changed.</summary>
    internal void OnModelsChanged()
    {
        lock (_lock)
        {
            RebuildLocked();
        }
    }

    private void RebuildLocked()
    {
        var map = new Dictionary<string, List<WorkerEndpoint>>(StringComparer.Ordinal);
        foreach (var e in _all)
        {
            foreach (var m in e.Models)
            {
                if (!map.TryGetValue(m, out var list))
                {
                    map[m] = list = [];
                }

                list.Add(e);
            }
        }

        var byModel = new Dictionary<string, WorkerCandidates>(StringComparer.Ordinal);
        foreach (var (m, list) in map)
        {
            byModel[m] = new WorkerCandidates([.. list]);
        }

        var models = map.Keys.ToArray();
        Array.Sort(models, StringComparer.Ordinal);
        Volatile.Write(ref _byModel, byModel);
        Volatile.Write(ref _models, models);
        var old = Interlocked.Exchange(ref _changed, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
        old.TrySetResult();
    }

    private ResiliencePipeline<AttemptOutcome> BuildBreaker(WorkerEndpoint endpoint)
    {
        var r = _options.Resilience;
        return new ResiliencePipelineBuilder<AttemptOutcome> { TimeProvider = _time }
            .AddCircuitBreaker(new CircuitBreakerStrategyOptions<AttemptOutcome>
            {
                FailureRatio = r.BreakerFailureRatio,
                MinimumThroughput = r.BreakerMinimumThroughput,
                SamplingDuration = r.BreakerSamplingDuration,
                BreakDuration = r.BreakerBreakDuration,
                ShouldHandle = static args => ValueTask.FromResult(args.Outcome.Result is { IsWorkerFault: true } || args.Outcome.Exception is HttpRequestException),
                OnOpened = args =>
                {
                    endpoint.OnCircuitOpened(args.BreakDuration);
                    _metrics?.RecordCircuitTransition(endpoint.Prefix, Telemetry.CircuitState.Open);
                    Log.CircuitOpened(_logger, endpoint.Prefix, args.BreakDuration.TotalSeconds);
                    return ValueTask.CompletedTask;
                },
                OnHalfOpened = _ =>
                {
                    _metrics?.RecordCircuitTransition(endpoint.Prefix, Telemetry.CircuitState.HalfOpen);
                    return ValueTask.CompletedTask;
                },
                OnClosed = _ =>
                {
                    endpoint.OnCircuitClosed();
                    _metrics?.RecordCircuitTransition(endpoint.Prefix, Telemetry.CircuitState.Closed);
                    return ValueTask.CompletedTask;
                },
            })
            .Build();
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = EventIds.WorkerAdded, Level = LogLevel.Information, Message = "Worker added: {Worker}")]
        public static partial void WorkerAdded(ILogger logger, string worker);

        [LoggerMessage(EventId = EventIds.WorkerRemoved, Level = LogLevel.Information, Message = "Worker removed: {Worker}")]
        public static partial void WorkerRemoved(ILogger logger, string worker);

        [LoggerMessage(EventId = EventIds.CircuitOpened, Level = LogLevel.Warning, Message = "Circuit opened for worker {Worker} for {Seconds} s")]
        public static partial void CircuitOpened(ILogger logger, string worker, double seconds);
    }
}
