using Gateway.Core.Routing;
using Gateway.Core.Routing.KvAware;
using Gateway.Fleet;
using Gateway.Routing;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Gateway.Hosting;

/// <summary>
/// Keeps one <see cref="KvEventSubscriber"/> running per worker that publishes KV events (its <c>/worker/state</c>
/// carries <c>kv_event_seq</c>), feeding the routing policy's <see cref="PreciseIndex"/> (<c>kv-aware</c>, <c>dynamo-kv</c>,
/// <c>llm-d-precise</c>: any <see cref="IKvEventConsumer"/>). Starts a subscriber
/// when such a worker appears (membership change or first good probe), stops it and forgets the worker's index entries
/// when the worker is removed; pin drops go to the agent retention layer. Does nothing when the routing policy reads no
/// KV events.
/// </summary>
public sealed class KvEventSubscriptions : BackgroundService
{
    private static readonly TimeSpan Poll = TimeSpan.FromMilliseconds(250);
    private readonly WorkerRegistry _registry;
    private readonly PreciseIndex? _index;
    private readonly KvEventSubscriber? _subscriber;
    private readonly HttpClient _http;
    private readonly TimeProvider _time;
    private readonly Dictionary<WorkerEndpoint, (CancellationTokenSource Cts, Task Run)> _running = [];

    /// <summary>Creates the manager.</summary>
    public KvEventSubscriptions(WorkerRegistry registry, IRoutingPolicy policy, TimeProvider time, ILoggerFactory loggers, Gateway.Agents.AgentRetentionService? agents = null)
    {
        ArgumentNullException.ThrowIfNull(loggers);
        _registry = registry;
        _time = time;
        _index = (policy as IKvEventConsumer)?.Precise;
        // Long-lived SSE streams: no overall timeout (cancellation stops them); connect timeout bounds dead workers.
        _http = new HttpClient(new SocketsHttpHandler { UseProxy = false, ConnectTimeout = TimeSpan.FromSeconds(2) }) { Timeout = Timeout.InfiniteTimeSpan };
        if (_index is not null)
        {
            _subscriber = new KvEventSubscriber(_http, _index, time, loggers.CreateLogger<KvEventSubscriber>(), agents is null ? null : agents.OnPinDropped);
        }
    }

    /// <summary>Workers with a running subscriber.</summary>
    public int Active
    {
        get
        {
            lock (_running)
            {
                return _running.Count;
            }
        }
    }

    /// <summary>KV events applied so far (all workers).</summary>
    public long EventsApplied => _subscriber?.EventsApplied ?? 0;

    /// <summary>Snapshots applied so far (all workers).</summary>
    public long Resyncs => _subscriber?.Resyncs ?? 0;

    /// <inheritdoc />
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (_index is null || _subscriber is null)
        {
            return;
        }

        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                Reconcile(stoppingToken);
                var change = _registry.WaitForChangeAsync();
                await Task.WhenAny(change, Task.Delay(Poll, _time, stoppingToken)).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException)
        {
        }
        finally
        {
            List<(CancellationTokenSource Cts, Task Run)> all;
            lock (_running)
            {
                all = [.. _running.Values];
                _running.Clear();
            }

            foreach (var (cts, _) in all)
            {
                await cts.CancelAsync().ConfigureAwait(false);
            }

            foreach (var (cts, run) in all)
            {
                await run.ConfigureAwait(false);
                cts.Dispose();
            }
        }
    }

    /// <inheritdoc />
    public override void Dispose()
    {
        base.Dispose();
        _http.Dispose();
    }

    private void Reconcile(CancellationToken stoppingToken)
    {
        var current = _registry.All;
        lock (_running)
        {
            foreach (var w in current)
            {
                if (!w.Removed && w.Info.PublishesKvEvents && !_running.ContainsKey(w))
                {
                    var cts = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
                    _running[w] = (cts, Task.Run(() => _subscriber!.RunAsync(w.BaseUri, w.Info.Index, cts.Token), CancellationToken.None));
                }
            }

            List<WorkerEndpoint>? gone = null;
            foreach (var w in _running.Keys)
            {
                if (w.Removed || !Contains(current, w))
                {
                    (gone ??= []).Add(w);
                }
            }

            foreach (var w in gone ?? [])
            {
                var (cts, run) = _running[w];
                _running.Remove(w);
                cts.Cancel();
                int index = w.Info.Index;
                var precise = _index!;
                precise.RemoveWorker(index);
                // Again once the subscriber has stopped, in case it applied an event between the cancel and its exit.
                _ = run.ContinueWith(_ =>
                {
                    precise.RemoveWorker(index);
                    cts.Dispose();
                }, CancellationToken.None, TaskContinuationOptions.None, TaskScheduler.Default);
            }
        }
    }

    private static bool Contains(IReadOnlyList<WorkerEndpoint> list, WorkerEndpoint w)
    {
        foreach (var x in list)
        {
            if (ReferenceEquals(x, w))
            {
                return true;
            }
        }

        return false;
    }
}
