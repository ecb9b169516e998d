using System.Net;
using System.Text.Json;
using Gateway.Configuration;
using Gateway.Telemetry;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Worker.Contract;

namespace Gateway.Fleet;

/// <summary>
/// Active health: polls every worker's <c>GET /worker/state</c> each <see cref="HealthOptions.Interval"/> (falls back to
/// <c>/healthz</c> for workers without it, e.g. vLLM), updates the reported load (waiting/running, KV usage, prefill
/// throughput) on its <see cref="Core.Routing.WorkerInfo"/>, and refreshes the worker's model list from <c>/v1/models</c>.
/// Probes of different workers run concurrently so one slow worker never delays the others.
/// </summary>
public sealed partial class HealthProber : BackgroundService
{
    private readonly WorkerRegistry _registry;
    private readonly GatewayOptions _options;
    private readonly ILogger<HealthProber> _logger;
    private readonly GatewayMetrics? _metrics;
    private readonly HttpClient _http;
    private readonly TimeProvider _time;
    private readonly HashSet<WorkerEndpoint> _probing = [];

    /// <summary>Creates the prober.</summary>
    public HealthProber(WorkerRegistry registry, IOptions<GatewayOptions> options, TimeProvider time, ILogger<HealthProber> logger, GatewayMetrics? metrics = null)
    {
        _metrics = metrics;
        _registry = registry;
        _options = options.Value;
        _time = time;
        _logger = logger;
        _http = new HttpClient(new SocketsHttpHandler
        {
            UseProxy = false,
            AutomaticDecompression = DecompressionMethods.None,
            ConnectTimeout = _options.Workers.ConnectTimeout,
            PooledConnectionIdleTimeout = TimeSpan.FromSeconds(30),
        })
        { Timeout = Timeout.InfiniteTimeSpan };
    }

    /// <summary>Probes every worker once, concurrently (also used at start-up and by tests).</summary>
    public async Task ProbeAllAsync(CancellationToken ct)
    {
        var all = _registry.All;
        var tasks = new List<Task>(all.Count);
        foreach (var e in all)
        {
            lock (_probing)
            {
                if (!_probing.Add(e))
                {
                    continue;
                }
            }

            tasks.Add(ProbeOneAsync(e, ct));
        }

        await Task.WhenAll(tasks).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public override void Dispose()
    {
        _http.Dispose();
        base.Dispose();
    }

    /// <inheritdoc />
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            var changed = _registry.WaitForChangeAsync();
            // Fire and forget per round: a slow worker must not hold up the next round for the others.
            _ = ProbeAllAsync(stoppingToken);
            try
            {
                await Task.WhenAny(Task.Delay(_options.Health.Interval, _time, stoppingToken), changed).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    private async Task ProbeOneAsync(WorkerEndpoint e, CancellationToken ct)
    {
        try
        {
            bool wasHealthy = e.Info.Healthy;
            long started = _time.GetUtcNow().UtcTicks;
            bool ok = await ProbeStateAsync(e, ct).ConfigureAwait(false);
            if (ok && (e.Models.Count == 0 || _time.GetUtcNow() - e.ModelsFetchedAt > _options.Workers.ModelsRefreshInterval))
            {
                await FetchModelsAsync(e, ct).ConfigureAwait(false);
            }

            e.OnProbe(ok, _options.Health.UnhealthyThreshold, started);
            if (wasHealthy != e.Info.Healthy)
            {
                Log.HealthChanged(_logger, e.Prefix, e.Info.Healthy);
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
        finally
        {
            lock (_probing)
            {
                _probing.Remove(e);
            }
        }
    }

    private async Task<bool> ProbeStateAsync(WorkerEndpoint e, CancellationToken ct)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        cts.CancelAfter(_options.Health.Timeout);
        try
        {
            if (e.SupportsWorkerState)
            {
                using var resp = await _http.GetAsync(e.Prefix + "/worker/state", HttpCompletionOption.ResponseContentRead, cts.Token).ConfigureAwait(false);
                if (resp.StatusCode == HttpStatusCode.NotFound)
                {
                    e.SupportsWorkerState = false;
                }
                else
                {
                    if (!resp.IsSuccessStatusCode)
                    {
                        return false;
                    }

                    var bytes = await resp.Content.ReadAsByteArrayAsync(cts.Token).ConfigureAwait(false);
                    ApplyState(e, bytes, _metrics);
                    return true;
                }
            }

            using var h = await _http.GetAsync(e.Prefix + "/healthz", cts.Token).ConfigureAwait(false);
            return h.IsSuccessStatusCode;
        }
        catch (Exception ex) when (ex is HttpRequestException or IOException or JsonException || (ex is OperationCanceledException && !ct.IsCancellationRequested))
        {
            return false;
        }
    }

    private static void ApplyState(WorkerEndpoint e, byte[] json, GatewayMetrics? metrics)
    {
        var state = JsonSerializer.Deserialize(json, WorkerContractJson.Default.WorkerStateBody) ?? throw new JsonException("/worker/state is null");
        var info = e.Info;
        if (state.WaitingRequests is int waiting)
        {
            info.ReportedWaiting = waiting;
            info.InFlightAtReport = info.InFlight;
        }

        if (state.RunningRequests is int running)
        {
            info.ReportedRunning = running;
        }

        int total = state.KvBlocksTotal ?? 0;
        int used = state.KvBlocksUsed ?? 0;
        if (total > 0)
        {
            info.KvBlocksTotal = total;
            info.KvUsage = Math.Clamp((double)used / total, 0, 1);
        }

        info.KvBlocksFree = state.KvBlocksFree is int free && free >= 0 ? free : -1;
        info.KvEvictionAgeSeconds = !state.ReportsKvEvictionAge ? double.NaN // not measured
            : state.KvEvictionAgeSeconds is not double age ? double.PositiveInfinity // nothing evicted yet
            : age >= 0 ? age : double.NaN;
        info.HostReloadSecondsPerToken = state.HostReloadSecondsPerToken is double reload && reload >= 0 && double.IsFinite(reload) ? reload : 0;
        info.HostKvBlocksTotal = state.HostKvBlocksTotal is int hostBlocks && hostBlocks > 0 ? hostBlocks : 0;
        info.PinBlocksTotal = state is { PinCostBlocksTotal: long cost and >= 0, PinSavedBlocksTotal: long saved and >= 0 } ? (cost, saved) : (-1, -1);
        if (state.PrefillTokensPerSecond is double pt && pt > 0)
        {
            info.PrefillTokensPerSecond = pt;
        }

        if (state.DecodeStepSeconds is double ds && ds > 0)
        {
            info.DecodeStepSeconds = ds;
        }

        info.PublishesKvEvents = state.KvEventSeq is not null;
        info.Draining = state.Draining == true;
        e.PinsActive = state.PinsActive ?? 0;
        RecordCounterDelta(state.PinsDroppedTotal, ref e.PinsDroppedSeen, d => metrics?.RecordRetentionPinsDropped(e.Prefix, d));
        RecordCounterDelta(state.PinsExpiredTotal, ref e.PinsExpiredSeen, d => metrics?.RecordRetentionPinsExpired(d));
    }

    /// <summary>
    /// Turns a worker's monotonic counter into increments of a gateway counter: the first reading is the baseline,
    /// a smaller reading (worker restarted) becomes the new baseline.
    /// </summary>
    private static void RecordCounterDelta(long? reading, ref long seen, Action<long> record)
    {
        if (reading is not long now)
        {
            return;
        }

        long before = seen;
        seen = now;
        if (before >= 0 && now > before)
        {
            record(now - before);
        }
    }

    private async Task FetchModelsAsync(WorkerEndpoint e, CancellationToken ct)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        cts.CancelAfter(_options.Health.Timeout);
        try
        {
            using var resp = await _http.GetAsync(e.Prefix + "/v1/models", cts.Token).ConfigureAwait(false);
            if (!resp.IsSuccessStatusCode)
            {
                return;
            }

            using var doc = JsonDocument.Parse(await resp.Content.ReadAsByteArrayAsync(cts.Token).ConfigureAwait(false));
            var models = new List<string>();
            if (doc.RootElement.TryGetProperty("data", out var data) && data.ValueKind == JsonValueKind.Array)
            {
                foreach (var m in data.EnumerateArray())
                {
                    if (m.TryGetProperty("id", out var id) && id.ValueKind == JsonValueKind.String)
                    {
                        models.Add(id.GetString()!);
                    }
                }
            }

            models.Sort(StringComparer.Ordinal);
            bool changed = !models.SequenceEqual(e.Models);
            e.Models = models;
            e.ModelsFetchedAt = _time.GetUtcNow();
            if (changed)
            {
                _registry.OnModelsChanged();
            }
        }
        catch (Exception ex) when (ex is HttpRequestException or IOException or JsonException || (ex is OperationCanceledException && !ct.IsCancellationRequested))
        {
            // Keep the previous list; the next round retries.
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = EventIds.WorkerHealthChanged, Level = LogLevel.Information, Message = "Worker {Worker} healthy={Healthy}")]
        public static partial void HealthChanged(ILogger logger, string worker, bool healthy);
    }
}
