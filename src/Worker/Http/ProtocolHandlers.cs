using System.Globalization;
using System.Text.Json;
using Gateway.Core.OpenAi;
using Microsoft.AspNetCore.Http;
using Worker.Engine;
using Worker.Hosting;

namespace Worker.Http;

/// <summary>
/// The worker protocol the gateway speaks besides OpenAI: state snapshots, the KV event stream with resync,
/// the KV snapshot, and retention pins (see docs/worker-protocol.md).
/// </summary>
internal sealed class ProtocolHandlers
{
    /// <summary>Idle KV event streams send an SSE comment this often (detects gone consumers).</summary>
    internal static readonly TimeSpan Heartbeat = TimeSpan.FromSeconds(10);

    private const int MaxBatch = 4096;

    private readonly WorkerContext _w;

    public ProtocolHandlers(WorkerContext context) => _w = context;

    public async Task HealthAsync(HttpContext ctx)
    {
        var fault = _w.Loop.Fault;
        await HttpJson.WriteJsonAsync(ctx, fault is null ? 200 : 503, w =>
        {
            w.WriteStartObject();
            w.WriteString("status", fault is null ? "ok" : "engine_loop_failed");
            w.WriteString("model", _w.ServedModel);
            w.WriteEndObject();
        }).ConfigureAwait(false);
    }

    /// <summary>
    /// <c>POST /worker/drain</c>: stop taking new generation requests (503 + Retry-After) and report
    /// <c>"draining": true</c> in the state, while in-flight requests run to completion. For a Kubernetes preStop
    /// hook: drain, wait for routers to notice (one health interval), then let SIGTERM stop the process.
    /// </summary>
    public async Task DrainAsync(HttpContext ctx)
    {
        if (!HttpMethods.IsPost(ctx.Request.Method))
        {
            await HttpJson.WriteErrorAsync(ctx, HttpJson.MethodNotAllowed(ctx, "POST")).ConfigureAwait(false);
            return;
        }

        _w.BeginDrain();
        var state = _w.Loop.Read(e => e.GetState());
        await HttpJson.WriteJsonAsync(ctx, 200, w =>
        {
            w.WriteStartObject();
            w.WriteBoolean("draining", true);
            w.WriteNumber("running_requests", state.RunningRequests);
            w.WriteNumber("waiting_requests", state.WaitingRequests);
            w.WriteEndObject();
        }).ConfigureAwait(false);
    }

    /// <summary><c>GET /readyz</c>: 200 while the worker takes new requests; 503 while draining or when its engine loop failed.</summary>
    public async Task ReadyAsync(HttpContext ctx)
    {
        var fault = _w.Loop.Fault;
        string status = fault is not null ? "engine_loop_failed" : _w.Draining ? "draining" : "ready";
        await HttpJson.WriteJsonAsync(ctx, status == "ready" ? 200 : 503, w =>
        {
            w.WriteStartObject();
            w.WriteString("status", status);
            w.WriteEndObject();
        }).ConfigureAwait(false);
    }

    public async Task StateAsync(HttpContext ctx)
    {
        if (!HttpMethods.IsGet(ctx.Request.Method))
        {
            await HttpJson.WriteErrorAsync(ctx, HttpJson.MethodNotAllowed(ctx, "GET")).ConfigureAwait(false);
            return;
        }

        var state = _w.Loop.ReadState();
        await HttpJson.WriteJsonAsync(ctx, 200, w => WorkerStateWriter.Write(w, _w, state)).ConfigureAwait(false);
    }

    public async Task SnapshotAsync(HttpContext ctx)
    {
        if (!HttpMethods.IsGet(ctx.Request.Method))
        {
            await HttpJson.WriteErrorAsync(ctx, HttpJson.MethodNotAllowed(ctx, "GET")).ConfigureAwait(false);
            return;
        }

        var snapshot = _w.Loop.KvEvents.Snapshot();
        long seq = snapshot.Seq;
        var hashes = snapshot.BlockHashes;
        var host = snapshot.HostBlockHashes;
        await HttpJson.WriteJsonAsync(ctx, 200, w =>
        {
            w.WriteStartObject();
            w.WriteNumber("seq", seq);
            w.WriteNumber("block_size", _w.Options.BlockSize);
            w.WriteStartArray("block_hashes");
            foreach (var h in hashes)
            {
                w.WriteNumberValue(h);
            }

            w.WriteEndArray();
            w.WriteStartArray("host_block_hashes");
            foreach (var h in host)
            {
                w.WriteNumberValue(h);
            }

            w.WriteEndArray();
            w.WriteEndObject();
        }).ConfigureAwait(false);
    }

    /// <summary>
    /// <c>GET /worker/kv/events?after=SEQ</c>: SSE of every KV event with seq &gt; SEQ, then live ones. When the
    /// ring no longer holds seq SEQ+1, an <c>event: resync</c> comes first (and again whenever a slow reader falls
    /// off the ring); the stream then continues after the seq it names.
    /// </summary>
    public async Task EventsAsync(HttpContext ctx)
    {
        if (!HttpMethods.IsGet(ctx.Request.Method))
        {
            await HttpJson.WriteErrorAsync(ctx, HttpJson.MethodNotAllowed(ctx, "GET")).ConfigureAwait(false);
            return;
        }

        long after = 0;
        if (ctx.Request.Query.TryGetValue("after", out var afterValue)
            && (!long.TryParse(afterValue.ToString(), NumberStyles.Integer, CultureInfo.InvariantCulture, out after) || after < 0))
        {
            await HttpJson.WriteErrorAsync(ctx, OpenAiError.Invalid("'after' must be a non-negative integer sequence number.", "after")).ConfigureAwait(false);
            return;
        }

        var response = ctx.Response;
        response.StatusCode = 200;
        response.ContentType = "text/event-stream; charset=utf-8";
        response.Headers.CacheControl = "no-cache";
        response.Headers["X-Accel-Buffering"] = "no";
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(ctx.RequestAborted, _w.Stopping);
        var ct = linked.Token;
        try
        {
            await response.StartAsync(ct).ConfigureAwait(false);
            var sse = new SseChunkWriter(response.BodyWriter);
            sse.WriteComment("kv events");
            await sse.FlushAsync(ct).ConfigureAwait(false);
            var batch = new List<KvEvent>(256);
            while (!ct.IsCancellationRequested)
            {
                batch.Clear();
                var log = _w.Loop.KvEvents;
                long last = log.LastSeq;
                log.ReadAfter(after, batch, out bool gap, MaxBatch);

                // A consumer ahead of this worker's log (it restarted and its seq began again) must resync too.
                gap |= after > last;
                if (gap)
                {
                    sse.WriteEvent("resync", w =>
                    {
                        w.WriteStartObject();
                        w.WriteNumber("seq", last);
                        w.WriteEndObject();
                    });
                    after = last;
                    foreach (var e in batch)
                    {
                        if (e.Seq > last)
                        {
                            WriteEvent(sse, e);
                            after = e.Seq;
                        }
                    }
                }
                else
                {
                    foreach (var e in batch)
                    {
                        WriteEvent(sse, e);
                        after = e.Seq;
                    }
                }

                if (gap || batch.Count > 0)
                {
                    await sse.FlushAsync(ct).ConfigureAwait(false);
                    continue;
                }

                try
                {
                    await _w.Loop.KvEvents.WaitAsync(after, ct).WaitAsync(Heartbeat, ct).ConfigureAwait(false);
                }
                catch (TimeoutException)
                {
                    sse.WriteComment("ping");
                    await sse.FlushAsync(ct).ConfigureAwait(false);
                }
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException or ObjectDisposedException)
        {
            // consumer went away
        }
    }

    private static void WriteEvent(SseChunkWriter sse, KvEvent e)
    {
        sse.WriteEvent("kv", w =>
        {
            w.WriteStartObject();
            w.WriteNumber("seq", e.Seq);
            w.WriteString("type", e.TypeName);
            w.WriteStartArray("block_hashes");
            foreach (var h in e.BlockHashes)
            {
                w.WriteNumberValue(h);
            }

            w.WriteEndArray();
            if (e.ParentBlockHash is ulong parent) { w.WriteNumber("parent_block_hash", parent); } else { w.WriteNull("parent_block_hash"); }
            w.WriteNumber("block_size", e.BlockSize);
            w.WriteString("medium", e.MediumName);
            w.WriteEndObject();
        });
    }

    public async Task RetainAsync(HttpContext ctx)
    {
        var pin = await ReadPinBodyAsync(ctx, requireTtl: true).ConfigureAwait(false);
        if (pin is null)
        {
            return;
        }

        if (pin.Tier == KvTier.Host && _w.Loop.Read(e => e.HostKvBlocksTotal) == 0)
        {
            await HttpJson.WriteErrorAsync(ctx, OpenAiError.Invalid("This worker has no host KV tier (start it with --host-kv-blocks).", "tier", "host_tier_unavailable")).ConfigureAwait(false);
            return;
        }

        var request = new RetainRequest
        {
            SessionId = pin.SessionId,
            BlockHashes = pin.BlockHashes,
            TtlMs = pin.TtlMs,
            Priority = pin.Priority,
            Value = pin.Value,
            Tier = pin.Tier,
        };
        var result = _w.Loop.Mutate(e => e.Retain(request));
        await HttpJson.WriteJsonAsync(ctx, 200, w =>
        {
            w.WriteStartObject();
            w.WriteNumber("pinned_blocks", result.PinnedBlocks);
            w.WriteNumber("dropped_pins", result.DroppedPins);
            w.WriteString("tier", pin.Tier == KvTier.Host ? "host" : "hbm");
            w.WriteEndObject();
        }).ConfigureAwait(false);
    }

    /// <summary>
    /// <c>POST /worker/kv/prefetch</c>: copy a session's (or the given hashes') host-resident blocks into HBM ahead of its
    /// next request, within the engine's budget (never memory running or queued work needs, never a pin).
    /// </summary>
    public async Task PrefetchAsync(HttpContext ctx)
    {
        var pin = await ReadPinBodyAsync(ctx, requireTtl: false).ConfigureAwait(false);
        if (pin is null)
        {
            return;
        }

        if (pin.MaxBlocks < 0)
        {
            await HttpJson.WriteErrorAsync(ctx, OpenAiError.Invalid("'max_blocks' must be an integer >= 0.", "max_blocks")).ConfigureAwait(false);
            return;
        }

        var request = new PrefetchRequest
        {
            SessionId = pin.SessionId,
            BlockHashes = pin.BlockHashes,
            MaxBlocks = pin.MaxBlocks,
            TtlMs = pin.TtlMs,
            Priority = pin.Priority,
            Value = pin.Value,
        };
        var result = _w.Loop.Mutate(e => e.Prefetch(request));
        double scale = _w.Loop.TimeScale;
        await HttpJson.WriteJsonAsync(ctx, 200, w =>
        {
            w.WriteStartObject();
            w.WriteNumber("loaded_blocks", result.LoadedBlocks);
            w.WriteNumber("resident_blocks", result.ResidentBlocks);
            w.WriteNumber("budget_blocks", result.BudgetBlocks);
            w.WriteNumber("ready_ms", Math.Round(result.ReadySeconds * 1000 * (scale > 0 ? scale : 1.0), 3));
            w.WriteEndObject();
        }).ConfigureAwait(false);
    }

    public async Task ReleaseAsync(HttpContext ctx)
    {
        var pin = await ReadPinBodyAsync(ctx, requireTtl: false).ConfigureAwait(false);
        if (pin is null)
        {
            return;
        }

        var request = new ReleaseRequest { SessionId = pin.SessionId, BlockHashes = pin.BlockHashes };
        int released = _w.Loop.Mutate(e => e.Release(request));
        await HttpJson.WriteJsonAsync(ctx, 200, w =>
        {
            w.WriteStartObject();
            w.WriteNumber("released_blocks", released);
            w.WriteEndObject();
        }).ConfigureAwait(false);
    }

    private sealed record PinBody(string? SessionId, ulong[]? BlockHashes, long TtlMs, int Priority, double Value, KvTier Tier = KvTier.Hbm, int MaxBlocks = 0);

    private async Task<PinBody?> ReadPinBodyAsync(HttpContext ctx, bool requireTtl)
    {
        if (!HttpMethods.IsPost(ctx.Request.Method))
        {
            await HttpJson.WriteErrorAsync(ctx, HttpJson.MethodNotAllowed(ctx, "POST")).ConfigureAwait(false);
            return null;
        }

        var (body, readError) = await HttpJson.ReadBodyAsync(ctx, 4 * 1024 * 1024).ConfigureAwait(false);
        if (readError is not null)
        {
            await HttpJson.WriteErrorAsync(ctx, readError).ConfigureAwait(false);
            return null;
        }

        var parsed = ParsePinBody(body!, requireTtl, out var error);
        if (parsed is null)
        {
            await HttpJson.WriteErrorAsync(ctx, error!).ConfigureAwait(false);
        }

        return parsed;
    }

    private static PinBody? ParsePinBody(byte[] body, bool requireTtl, out OpenAiError? error)
    {
        error = null;
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(body, new JsonDocumentOptions { MaxDepth = 8 });
        }
        catch (JsonException ex)
        {
            error = OpenAiError.Invalid("Request body is not valid JSON: " + ex.Message, null, "invalid_json");
            return null;
        }

        using (doc)
        {
            if ((error = JsonTextCheck.Check(body, 8)) is not null)
            {
                return null;
            }

            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                error = OpenAiError.Invalid("Request body must be a JSON object.");
                return null;
            }

            string? session = null;
            if (root.TryGetProperty("session_id", out var s) && s.ValueKind != JsonValueKind.Null)
            {
                if (s.ValueKind != JsonValueKind.String || s.GetString()!.Length == 0)
                {
                    error = OpenAiError.Invalid("'session_id' must be a non-empty string.", "session_id");
                    return null;
                }

                session = s.GetString();
            }

            ulong[]? hashes = null;
            if (root.TryGetProperty("block_hashes", out var h) && h.ValueKind != JsonValueKind.Null)
            {
                if (h.ValueKind != JsonValueKind.Array)
                {
                    error = OpenAiError.Invalid("'block_hashes' must be an array of unsigned 64-bit integers.", "block_hashes");
                    return null;
                }

                hashes = new ulong[h.GetArrayLength()];
                int i = 0;
                foreach (var e in h.EnumerateArray())
                {
                    if (e.ValueKind != JsonValueKind.Number || !e.TryGetUInt64(out hashes[i]))
                    {
                        error = OpenAiError.Invalid($"'block_hashes[{i}]' must be an unsigned 64-bit integer.", "block_hashes");
                        return null;
                    }

                    i++;
                }
            }

            if (session is null && hashes is null)
            {
                error = OpenAiError.Invalid("Give 'session_id' or 'block_hashes'.", "session_id", "missing_required_parameter");
                return null;
            }

            long ttl = 0;
            if (root.TryGetProperty("ttl_ms", out var t) && t.ValueKind != JsonValueKind.Null)
            {
                if (t.ValueKind != JsonValueKind.Number || !t.TryGetInt64(out ttl) || ttl <= 0 || ttl > 86_400_000)
                {
                    error = OpenAiError.Invalid("'ttl_ms' must be an integer in [1, 86400000].", "ttl_ms");
                    return null;
                }
            }
            else if (requireTtl)
            {
                error = OpenAiError.Invalid("Missing required parameter: 'ttl_ms'.", "ttl_ms", "missing_required_parameter");
                return null;
            }

            int priority = 0;
            if (root.TryGetProperty("priority", out var p) && p.ValueKind != JsonValueKind.Null
                && (p.ValueKind != JsonValueKind.Number || !p.TryGetInt32(out priority)))
            {
                error = OpenAiError.Invalid("'priority' must be an integer.", "priority");
                return null;
            }

            double value = 0;
            if (root.TryGetProperty("value", out var v) && v.ValueKind != JsonValueKind.Null
                && (v.ValueKind != JsonValueKind.Number || !v.TryGetDouble(out value) || !double.IsFinite(value)))
            {
                error = OpenAiError.Invalid("'value' must be a number.", "value");
                return null;
            }

            var tier = KvTier.Hbm;
            if (root.TryGetProperty("tier", out var tierValue) && tierValue.ValueKind != JsonValueKind.Null)
            {
                switch (tierValue.ValueKind == JsonValueKind.String ? tierValue.GetString() : null)
                {
                    case "hbm": tier = KvTier.Hbm; break;
                    case "host": tier = KvTier.Host; break;
                    default:
                        error = OpenAiError.Invalid("'tier' must be \"hbm\" or \"host\".", "tier");
                        return null;
                }
            }

            int maxBlocks = 0;
            if (root.TryGetProperty("max_blocks", out var mb) && mb.ValueKind != JsonValueKind.Null
                && (mb.ValueKind != JsonValueKind.Number || !mb.TryGetInt32(out maxBlocks) || maxBlocks < 0))
            {
                error = OpenAiError.Invalid("'max_blocks' must be an integer >= 0.", "max_blocks");
                return null;
            }

            return new PinBody(session, hashes, ttl, priority, value, tier, maxBlocks);
        }
    }
}
