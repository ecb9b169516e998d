using System.Globalization;
using System.Text;
using System.Text.Json;
using Gateway.Core.Routing.KvAware;
using Microsoft.Extensions.Logging;
using Worker.Contract;

namespace Gateway.Routing;

/// <summary>
/// Feeds a <see cref="PreciseIndex"/> from one worker's KV event stream (<c>GET /worker/kv/events?after=SEQ</c>, SSE):
/// applies <c>kv</c> events in order, and on an <c>event: resync</c>, a sequence gap, or a worker restart fetches
/// <c>GET /worker/kv/snapshot</c>, replaces the worker's set and skips stream events the snapshot already covers.
/// Reconnects with capped exponential backoff. One <see cref="RunAsync"/> per worker; the caller owns cancellation.
/// <c>pin_dropped</c> events (a retention pin the worker gave up under memory pressure) also go to <c>pinDropped</c>;
/// those lost in a gap the snapshot papers over are not seen (the pin then just counts as held until its TTL).
/// </summary>
public sealed partial class KvEventSubscriber(HttpClient http, PreciseIndex index, TimeProvider time, ILogger<KvEventSubscriber> logger, Action<int, KvEvent>? pinDropped = null)
{
    private static readonly TimeSpan MinBackoff = TimeSpan.FromMilliseconds(250);
    private static readonly TimeSpan MaxBackoff = TimeSpan.FromSeconds(10);

    /// <summary>Events applied so far (all workers of this subscriber).</summary>
    public long EventsApplied => Interlocked.Read(ref _applied);

    /// <summary>Snapshots applied so far.</summary>
    public long Resyncs => Interlocked.Read(ref _resyncs);

    private long _applied;
    private long _resyncs;

    /// <summary>Follows <paramref name="baseUri"/>'s stream for worker index <paramref name="worker"/> until cancelled.</summary>
    public async Task RunAsync(Uri baseUri, int worker, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(baseUri);
        var backoff = MinBackoff;
        while (!ct.IsCancellationRequested)
        {
            try
            {
                await StreamOnceAsync(baseUri, worker, () => backoff = MinBackoff, ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e) when (e is HttpRequestException or IOException or JsonException or FormatException or OperationCanceledException)
            {
                Log.StreamFailed(logger, baseUri.GetLeftPart(UriPartial.Authority), e.GetType().Name);
            }

            try
            {
                await Task.Delay(backoff, time, ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            backoff = TimeSpan.FromTicks(Math.Min(MaxBackoff.Ticks, backoff.Ticks * 2));
        }
    }

    private async Task StreamOnceAsync(Uri baseUri, int worker, Action connected, CancellationToken ct)
    {
        long skipThrough = index.LastSeq(worker);
        if (index.NeedsResync(worker))
        {
            skipThrough = await ResyncAsync(baseUri, worker, ct).ConfigureAwait(false);
        }

        var url = new Uri(baseUri, "/worker/kv/events?after=" + skipThrough.ToString(CultureInfo.InvariantCulture));
        using var response = await http.GetAsync(url, HttpCompletionOption.ResponseHeadersRead, ct).ConfigureAwait(false);
        response.EnsureSuccessStatusCode();
        connected();
        using var stream = await response.Content.ReadAsStreamAsync(ct).ConfigureAwait(false);
        using var reader = new StreamReader(stream, Encoding.UTF8);
        string? eventName = null;
        var data = new StringBuilder();
        while (await reader.ReadLineAsync(ct).ConfigureAwait(false) is { } line)
        {
            if (line.Length == 0)
            {
                if (data.Length > 0)
                {
                    if (eventName == "resync")
                    {
                        skipThrough = await ResyncAsync(baseUri, worker, ct).ConfigureAwait(false);
                    }
                    else if (eventName is null or "kv")
                    {
                        var e = ParseEvent(data.ToString());
                        if (e.Seq > skipThrough || index.NeedsResync(worker))
                        {
                            var result = index.Apply(worker, e);
                            Interlocked.Increment(ref _applied);
                            if (e.Type == KvEventType.PinDropped && result != KvApplyResult.Duplicate)
                            {
                                pinDropped?.Invoke(worker, e); // the retention layer scores and un-budgets the pin
                            }

                            if (result is KvApplyResult.GapNeedsResync or KvApplyResult.AwaitingResync)
                            {
                                skipThrough = await ResyncAsync(baseUri, worker, ct).ConfigureAwait(false);
                            }
                            else
                            {
                                skipThrough = Math.Max(skipThrough, e.Seq);
                            }
                        }
                    }
                }

                eventName = null;
                data.Clear();
                continue;
            }

            if (line[0] == ':')
            {
                continue; // comment / heartbeat
            }

            if (line.StartsWith("event:", StringComparison.Ordinal))
            {
                eventName = line[6..].Trim();
            }
            else if (line.StartsWith("data:", StringComparison.Ordinal))
            {
                data.Append(line.AsSpan(5).TrimStart());
            }
        }
    }

    private async Task<long> ResyncAsync(Uri baseUri, int worker, CancellationToken ct)
    {
        using var response = await http.GetAsync(new Uri(baseUri, "/worker/kv/snapshot"), ct).ConfigureAwait(false);
        response.EnsureSuccessStatusCode();
        await using var body = await response.Content.ReadAsStreamAsync(ct).ConfigureAwait(false);
        var snapshot = await JsonSerializer.DeserializeAsync(body, WorkerContractJson.Default.KvSnapshotBody, ct).ConfigureAwait(false)
            ?? throw new JsonException("/worker/kv/snapshot is null");
        index.ApplySnapshot(worker, snapshot.Seq, snapshot.BlockHashes ?? [], snapshot.HostBlockHashes ?? []);
        Interlocked.Increment(ref _resyncs);
        return snapshot.Seq;
    }

    /// <summary>Parses one <c>kv</c> event's data (<c>{"seq","type","block_hashes","parent_block_hash","block_size","medium"}</c>).</summary>
    public static KvEvent ParseEvent(string json)
    {
        var e = JsonSerializer.Deserialize(json, WorkerContractJson.Default.KvEvent) ?? throw new JsonException("kv event is null");
        return e with { BlockHashes = e.BlockHashes ?? [] };
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 5101, Level = LogLevel.Debug, Message = "kv event stream from {Worker} ended ({Error}); reconnecting")]
        public static partial void StreamFailed(ILogger logger, string worker, string error);
    }
}
