using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Llm.Prompt.OpenAi;
using Microsoft.AspNetCore.Http;
using Worker.Contract;
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
        await HttpJson.WriteJsonAsync(ctx, 200, new DrainReply(true, state.RunningRequests, state.WaitingRequests), WorkerContractJson.Default.DrainReply).ConfigureAwait(false);
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
        await HttpJson.WriteJsonAsync(ctx, 200, WorkerStateWriter.Build(_w, state), WorkerContractJson.Default.WorkerStateBody).ConfigureAwait(false);
    }

    public async Task SnapshotAsync(HttpContext ctx)
    {
        if (!HttpMethods.IsGet(ctx.Request.Method))
        {
            await HttpJson.WriteErrorAsync(ctx, HttpJson.MethodNotAllowed(ctx, "GET")).ConfigureAwait(false);
            return;
        }

        var snapshot = _w.Loop.KvEvents.Snapshot();
        await HttpJson.WriteJsonAsync(ctx, 200, snapshot, WorkerContractJson.Default.KvSnapshotBody).ConfigureAwait(false);
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
                    var resync = new KvResyncBody(last);
                    sse.WriteEvent("resync", w => JsonSerializer.Serialize(w, resync, WorkerContractJson.Default.KvResyncBody));
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

    private static void WriteEvent(SseChunkWriter sse, KvEvent e) =>
        sse.WriteEvent("kv", w => JsonSerializer.Serialize(w, e, WorkerContractJson.Default.KvEvent));

    public async Task RetainAsync(HttpContext ctx)
    {
        var pin = await ReadPinBodyAsync(ctx, WorkerContractJson.Default.RetainBody).ConfigureAwait(false);
        if (pin is null || !await ValidateAsync(ctx, PinError(pin.SessionId, pin.BlockHashes, pin.TtlMs, requireTtl: true, pin.Value)).ConfigureAwait(false))
        {
            return;
        }

        var tier = pin.Tier ?? KvPinTier.Hbm;
        if (tier == KvPinTier.Host && _w.Loop.Read(e => e.HostKvBlocksTotal) == 0)
        {
            await HttpJson.WriteErrorAsync(ctx, OpenAiError.Invalid("This worker has no host KV tier (start it with --host-kv-blocks).", "tier", "host_tier_unavailable")).ConfigureAwait(false);
            return;
        }

        var request = new RetainRequest
        {
            SessionId = pin.SessionId,
            BlockHashes = pin.BlockHashes,
            TtlMs = pin.TtlMs ?? 0,
            Priority = pin.Priority ?? 0,
            Value = pin.Value ?? 0,
            Tier = tier,
        };
        var result = _w.Loop.Mutate(e => e.Retain(request));
        await HttpJson.WriteJsonAsync(ctx, 200, new RetainReply(result.PinnedBlocks, result.DroppedPins, tier), WorkerContractJson.Default.RetainReply).ConfigureAwait(false);
    }

    /// <summary>
    /// <c>POST /worker/kv/prefetch</c>: copy a session's (or the given hashes') host-resident blocks into HBM ahead of its
    /// next request, within the engine's budget (never memory running or queued work needs, never a pin).
    /// </summary>
    public async Task PrefetchAsync(HttpContext ctx)
    {
        var pin = await ReadPinBodyAsync(ctx, WorkerContractJson.Default.PrefetchBody).ConfigureAwait(false);
        var error = pin is null ? null
            : PinError(pin.SessionId, pin.BlockHashes, pin.TtlMs, requireTtl: false, pin.Value)
              ?? (pin.MaxBlocks < 0 ? OpenAiError.Invalid("'max_blocks' must be an integer >= 0.", "max_blocks") : null);
        if (pin is null || !await ValidateAsync(ctx, error).ConfigureAwait(false))
        {
            return;
        }

        var request = new PrefetchRequest
        {
            SessionId = pin.SessionId,
            BlockHashes = pin.BlockHashes,
            MaxBlocks = pin.MaxBlocks ?? 0,
            TtlMs = pin.TtlMs ?? 0,
            Priority = pin.Priority ?? 0,
            Value = pin.Value ?? 0,
        };
        var result = _w.Loop.Mutate(e => e.Prefetch(request));
        double scale = _w.Loop.TimeScale;
        var reply = new PrefetchReply(result.LoadedBlocks, result.ResidentBlocks, result.BudgetBlocks, Math.Round(result.ReadySeconds * 1000 * (scale > 0 ? scale : 1.0), 3));
        await HttpJson.WriteJsonAsync(ctx, 200, reply, WorkerContractJson.Default.PrefetchReply).ConfigureAwait(false);
    }

    public async Task ReleaseAsync(HttpContext ctx)
    {
        var pin = await ReadPinBodyAsync(ctx, WorkerContractJson.Default.ReleaseBody).ConfigureAwait(false);
        if (pin is null || !await ValidateAsync(ctx, PinError(pin.SessionId, pin.BlockHashes, null, requireTtl: false, null)).ConfigureAwait(false))
        {
            return;
        }

        var request = new ReleaseRequest { SessionId = pin.SessionId, BlockHashes = pin.BlockHashes };
        int released = _w.Loop.Mutate(e => e.Release(request));
        await HttpJson.WriteJsonAsync(ctx, 200, new ReleaseReply(released), WorkerContractJson.Default.ReleaseReply).ConfigureAwait(false);
    }

    private static async Task<bool> ValidateAsync(HttpContext ctx, OpenAiError? error)
    {
        if (error is not null)
        {
            await HttpJson.WriteErrorAsync(ctx, error).ConfigureAwait(false);
        }

        return error is null;
    }

    /// <summary>The rules every pin body shares: a non-empty session id or block hashes, a TTL in range, a finite value.</summary>
    private static OpenAiError? PinError(string? session, ulong[]? hashes, long? ttlMs, bool requireTtl, double? value)
    {
        if (session is { Length: 0 })
        {
            return OpenAiError.Invalid("'session_id' must be a non-empty string.", "session_id");
        }

        if (session is null && hashes is null)
        {
            return OpenAiError.Invalid("Give 'session_id' or 'block_hashes'.", "session_id", "missing_required_parameter");
        }

        if (ttlMs is long ttl && (ttl <= 0 || ttl > 86_400_000))
        {
            return OpenAiError.Invalid("'ttl_ms' must be an integer in [1, 86400000].", "ttl_ms");
        }

        if (ttlMs is null && requireTtl)
        {
            return OpenAiError.Invalid("Missing required parameter: 'ttl_ms'.", "ttl_ms", "missing_required_parameter");
        }

        return value is double v && !double.IsFinite(v) ? OpenAiError.Invalid("'value' must be a number.", "value") : null;
    }

    /// <summary>
    /// Reads a worker-protocol body into its contract type; a body that is not JSON, not an object, or has a field of the
    /// wrong type is answered with a 400 naming the field (the error is written and null returned).
    /// </summary>
    private static async Task<T?> ReadPinBodyAsync<T>(HttpContext ctx, JsonTypeInfo<T> type)
        where T : class
    {
        if (!HttpMethods.IsPost(ctx.Request.Method))
        {
            await HttpJson.WriteErrorAsync(ctx, HttpJson.MethodNotAllowed(ctx, "POST")).ConfigureAwait(false);
            return null;
        }

        var (body, readError) = await HttpJson.ReadBodyAsync(ctx, 4 * 1024 * 1024).ConfigureAwait(false);
        var error = readError ?? JsonTextCheck.Check(body!, 8);
        T? parsed = null;
        if (error is null)
        {
            try
            {
                parsed = JsonSerializer.Deserialize(body, type);
                error = parsed is null ? OpenAiError.Invalid("Request body must be a JSON object.") : null;
            }
            catch (JsonException ex) when (ex.InnerException is JsonException) // the reader's: not JSON at all
            {
                error = OpenAiError.Invalid("Request body is not valid JSON: " + ex.Message, null, "invalid_json");
            }
            catch (JsonException ex)
            {
                error = FieldError(ex.Path);
            }
        }

        if (error is not null)
        {
            await HttpJson.WriteErrorAsync(ctx, error).ConfigureAwait(false);
        }

        return parsed;
    }

    /// <summary>The error for a field of the wrong type or out of its type's range (JSON path <c>$.name[...]</c>).</summary>
    private static OpenAiError FieldError(string? path)
    {
        string field = path is null || path.Length < 3 ? "" : path[2..];
        int bracket = field.IndexOfAny(['[', '.']);
        string name = bracket >= 0 ? field[..bracket] : field;
        return name switch
        {
            "" => OpenAiError.Invalid("Request body must be a JSON object."),
            "session_id" => OpenAiError.Invalid("'session_id' must be a non-empty string.", name),
            "block_hashes" => OpenAiError.Invalid($"'{field}' must be an array of unsigned 64-bit integers.", name),
            "ttl_ms" => OpenAiError.Invalid("'ttl_ms' must be an integer in [1, 86400000].", name),
            "priority" => OpenAiError.Invalid("'priority' must be an integer.", name),
            "value" => OpenAiError.Invalid("'value' must be a number.", name),
            "tier" => OpenAiError.Invalid("'tier' must be \"hbm\" or \"host\".", name),
            "max_blocks" => OpenAiError.Invalid("'max_blocks' must be an integer >= 0.", name),
            _ => OpenAiError.Invalid($"'{name}' has the wrong type.", name),
        };
    }
}
