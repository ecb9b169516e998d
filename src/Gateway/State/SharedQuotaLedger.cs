using System.Globalization;
using Gateway.Core.Scheduling;
using Gateway.Core.Tenancy;
using StackExchange.Redis;

namespace Gateway.State;

/// <summary>What <see cref="SharedQuotaLedger"/> does while Redis is unreachable.</summary>
public enum QuotaFailMode
{
    /// <summary>Admit on the replica's local ledger only (each replica enforces the limits on its own traffic).</summary>
    Open = 0,

    /// <summary>Refuse requests of tenants that have quotas (503 <c>quota_store_unavailable</c>, Retry-After 1 s).</summary>
    Closed,
}

/// <summary>A reservation held in Redis until the request settles.</summary>
public sealed class SharedQuotaReservation
{
    internal SharedQuotaReservation(string member, string[] tokenKeys, string[] concurrencyKeys, string[] budgetKeys, double tokens, double cost)
    {
        Member = member;
        TokenKeys = tokenKeys;
        ConcurrencyKeys = concurrencyKeys;
        BudgetKeys = budgetKeys;
        Tokens = tokens;
        Cost = cost;
    }

    internal string Member { get; }
    internal string[] TokenKeys { get; }
    internal string[] ConcurrencyKeys { get; }
    internal string[] BudgetKeys { get; }
    internal double Tokens { get; }
    internal double Cost { get; }
    internal int Settled;
}

/// <summary>
/// Tenant quotas (tokens and requests per minute, concurrent requests, budget) held in Redis so a limit holds across gateway
/// replicas. One Lua script per admission checks every limited node of the tenant's path and, only if all pass,
/// reserves on all of them (atomic: no two replicas can both take the last slot). Layout per node path P:
/// <c>{prefix}q:P:t:{window}</c> tokens in a one-minute window (INCRBYFLOAT, PEXPIRE two windows; the check uses the
/// same two-window sliding approximation as <see cref="QuotaLedger"/>), <c>{prefix}q:P:c</c> a sorted set of
/// in-flight reservations scored by lease expiry (a crashed replica's slots expire after <see cref="Lease"/>),
/// <c>{prefix}q:P:b</c> budget spent (INCRBYFLOAT, no expiry), <c>{prefix}q:P:r:{window}</c> requests admitted in a
/// one-minute window (INCR, PEXPIRE two windows; never corrected at settlement). Settlement (completion or cancel) corrects tokens and
/// cost to actual usage and removes the slot, in one script. The replica's local <see cref="QuotaLedger"/> keeps
/// running in <see cref="GatewayQueue"/>; while Redis is away <see cref="FailMode"/> decides: open = admit on the
/// local ledger only, closed = refuse with 503. Thread-safe.
/// </summary>
public sealed class SharedQuotaLedger
{
    private const string Reserve = """
        local n = #KEYS / 6
        local now = tonumber(ARGV[1])
        local tokens = tonumber(ARGV[2])
        local cost = tonumber(ARGV[3])
        local frac = tonumber(ARGV[4])
        local win = tonumber(ARGV[5])
        local member = ARGV[6]
        local lease = tonumber(ARGV[7])
        for i = 0, n - 1 do
          local tpm = tonumber(ARGV[8 + i * 4])
          local conc = tonumber(ARGV[9 + i * 4])
          local budget = tonumber(ARGV[10 + i * 4])
          local rpm = tonumber(ARGV[11 + i * 4])
          if conc >= 0 then
            redis.call('ZREMRANGEBYSCORE', KEYS[i * 6 + 3], '-inf', now)
            if redis.call('ZCARD', KEYS[i * 6 + 3]) + 1 > conc then return {2, i, '0', '0'} end
          end
          if budget >= 0 then
            local spent = tonumber(redis.call('GET', KEYS[i * 6 + 4]) or '0')
            if spent + cost > budget then return {3, i, tostring(spent), '0'} end
          end
          if rpm >= 0 then
            local rcur = tonumber(redis.call('GET', KEYS[i * 6 + 5]) or '0')
            local rprev = tonumber(redis.call('GET', KEYS[i * 6 + 6]) or '0')
            if rprev * (1 - frac) + rcur + 1 > rpm then return {4, i, tostring(rprev), tostring(rcur)} end
          end
          if tpm >= 0 then
            local cur = tonumber(redis.call('GET', KEYS[i * 6 + 1]) or '0')
            local prev = tonumber(redis.call('GET', KEYS[i * 6 + 2]) or '0')
            if prev * (1 - frac) + cur + tokens > tpm then return {1, i, tostring(prev), tostring(cur)} end
          end
        end
        for i = 0, n - 1 do
          if tonumber(ARGV[8 + i * 4]) >= 0 then
            redis.call('INCRBYFLOAT', KEYS[i * 6 + 1], tokens)
            redis.call('PEXPIRE', KEYS[i * 6 + 1], win * 2)
          end
          if tonumber(ARGV[9 + i * 4]) >= 0 then
            redis.call('ZADD', KEYS[i * 6 + 3], now + lease, member)
            redis.call('PEXPIRE', KEYS[i * 6 + 3], lease)
          end
          if tonumber(ARGV[10 + i * 4]) >= 0 then
            redis.call('INCRBYFLOAT', KEYS[i * 6 + 4], cost)
          end
          if tonumber(ARGV[11 + i * 4]) >= 0 then
            redis.call('INCR', KEYS[i * 6 + 5])
            redis.call('PEXPIRE', KEYS[i * 6 + 5], win * 2)
          end
        end
        return {0, -1, '0', '0'}
        """;

    // KEYS: token-window keys..., concurrency keys..., budget keys... (counts in ARGV[1..3]); ARGV[4] member, [5] dTokens, [6] dCost.
    private const string Settle = """
        local nt = tonumber(ARGV[1])
        local nc = tonumber(ARGV[2])
        local nb = tonumber(ARGV[3])
        local member = ARGV[4]
        local dt = tonumber(ARGV[5])
        local dc = tonumber(ARGV[6])
        for i = 1, nt do
          if dt ~= 0 and redis.call('EXISTS', KEYS[i]) == 1 then
            local v = tonumber(redis.call('INCRBYFLOAT', KEYS[i], dt))
            if v < 0 then redis.call('SET', KEYS[i], '0', 'KEEPTTL') end
          end
        end
        for i = nt + 1, nt + nc do
          redis.call('ZREM', KEYS[i], member)
        end
        for i = nt + nc + 1, nt + nc + nb do
          if dc ~= 0 then
            local v = tonumber(redis.call('INCRBYFLOAT', KEYS[i], dc))
            if v < 0 then redis.call('SET', KEYS[i], '0') end
          end
        end
        return 1
        """;

    private readonly RedisConnection _redis;
    private readonly QuotaLedger _window;
    private readonly string _prefix;
    private readonly string _replica;
    private readonly TimeProvider _time;
    private long _seq;

    /// <summary>Creates the ledger over <paramref name="redis"/>; <paramref name="window"/> supplies window positions (the local ledger).</summary>
    public SharedQuotaLedger(RedisConnection redis, QuotaLedger window, string prefix, string replicaId, QuotaFailMode failMode, TimeProvider time, TimeSpan? lease = null)
    {
        _redis = redis ?? throw new ArgumentNullException(nameof(redis));
        _window = window ?? throw new ArgumentNullException(nameof(window));
        _prefix = prefix ?? "gw:";
        _replica = replicaId ?? "";
        _time = time ?? TimeProvider.System;
        FailMode = failMode;
        Lease = lease ?? TimeSpan.FromMinutes(15);
    }

    /// <summary>What happens while Redis is unreachable.</summary>
    public QuotaFailMode FailMode { get; }

    /// <summary>How long an unsettled concurrency slot counts (a crashed replica's slots fade after this).</summary>
    public TimeSpan Lease { get; }

    /// <summary>
    /// Reserves <paramref name="tokens"/> and <paramref name="cost"/> on every limited node from <paramref name="node"/>
    /// up. Returns (reservation or null when no node has a limit or Redis is away in open mode, refusal or null).
    /// </summary>
    public async Task<(SharedQuotaReservation? Reservation, AdmissionResult? Refusal)> TryReserveAsync(TenantNode node, double tokens, double cost, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(node);
        var limited = new List<TenantNode>(4);
        for (var n = node; n is not null; n = n.Parent)
        {
            if (n.Config.Quota is { } q && (q.TokensPerMinute is not null || q.MaxConcurrent is not null || q.Budget is not null || q.RequestsPerMinute is not null))
            {
                limited.Add(n);
            }
        }

        if (limited.Count == 0)
        {
            return (null, null);
        }

        var (index, frac) = _window.WindowPosition();
        var keys = new List<string>(limited.Count * 6);
        var args = new List<string>(7 + limited.Count * 4)
        {
            Ms(_time.GetUtcNow().ToUnixTimeMilliseconds()),
            Num(tokens),
            Num(cost),
            Num(frac),
            Ms((long)_window.Window.TotalMilliseconds),
            _replica + ":" + Interlocked.Increment(ref _seq).ToString(CultureInfo.InvariantCulture),
            Ms((long)Lease.TotalMilliseconds),
        };
        var tokenKeys = new List<string>();
        var concKeys = new List<string>();
        var budgetKeys = new List<string>();
        foreach (var n in limited)
        {
            var q = n.Config.Quota!;
            string baseKey = _prefix + "q:" + n.Path;
            keys.Add(baseKey + ":t:" + index.ToString(CultureInfo.InvariantCulture));
            keys.Add(baseKey + ":t:" + (index - 1).ToString(CultureInfo.InvariantCulture));
            keys.Add(baseKey + ":c");
            keys.Add(baseKey + ":b");
            keys.Add(baseKey + ":r:" + index.ToString(CultureInfo.InvariantCulture));
            keys.Add(baseKey + ":r:" + (index - 1).ToString(CultureInfo.InvariantCulture));
            args.Add(q.TokensPerMinute is { } tpm ? Num(tpm) : "-1");
            args.Add(q.MaxConcurrent is { } c ? c.ToString(CultureInfo.InvariantCulture) : "-1");
            args.Add(q.Budget is { } b ? Num(b) : "-1");
            args.Add(q.RequestsPerMinute is { } rpm ? rpm.ToString(CultureInfo.InvariantCulture) : "-1");
            if (q.TokensPerMinute is not null) { tokenKeys.Add(keys[^6]); }
            if (q.MaxConcurrent is not null) { concKeys.Add(keys[^4]); }
            if (q.Budget is not null) { budgetKeys.Add(keys[^3]); }
        }

        RedisResult[] items;
        try
        {
            var reply = await _redis.RunAsync("EVALSHA", db => db.ScriptEvaluateAsync(Reserve,
                keys.ConvertAll(k => (RedisKey)k).ToArray(), args.ConvertAll(a => (RedisValue)a).ToArray())).ConfigureAwait(false);
            items = (RedisResult[])reply!;
        }
        catch (Exception ex) when (RedisConnection.IsUnavailable(ex))
        {
            return FailMode == QuotaFailMode.Open
                ? (null, null)
                : (null, new AdmissionResult(AdmissionOutcome.QuotaStoreUnavailable, TimeSpan.FromSeconds(1), "Quota state is unavailable. Retry later."));
        }

        var code = (long)items[0];
        if (code == 0)
        {
            return (new SharedQuotaReservation(args[5], [.. tokenKeys], [.. concKeys], [.. budgetKeys], tokens, cost), null);
        }

        var at = limited[(int)(long)items[1]];
        return code switch
        {
            1 => (null, GatewayQueue.QuotaRefusal(QuotaLimit.TokensPerMinute,
                QuotaLedger.RetryAfterTokens(Dbl(items[2]), Dbl(items[3]), frac, tokens, at.Config.Quota!.TokensPerMinute!.Value, _window.Window), at.Path)),
            2 => (null, GatewayQueue.QuotaRefusal(QuotaLimit.Concurrency, TimeSpan.FromSeconds(1), at.Path)),
            4 => (null, GatewayQueue.QuotaRefusal(QuotaLimit.RequestsPerMinute,
                QuotaLedger.RetryAfterTokens(Dbl(items[2]), Dbl(items[3]), frac, 1, at.Config.Quota!.RequestsPerMinute!.Value, _window.Window), at.Path)),
            _ => (null, GatewayQueue.QuotaRefusal(QuotaLimit.Budget, null, at.Path)),
        };
    }

    /// <summary>Corrects a reservation to actual usage and frees its slot (completion, cancel: 0/0). Idempotent; best effort.</summary>
    public async Task SettleAsync(SharedQuotaReservation reservation, double actualTokens, double actualCost, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(reservation);
        if (Interlocked.Exchange(ref reservation.Settled, 1) != 0)
        {
            return;
        }

        var keys = new List<string>(reservation.TokenKeys.Length + reservation.ConcurrencyKeys.Length + reservation.BudgetKeys.Length);
        keys.AddRange(reservation.TokenKeys);
        keys.AddRange(reservation.ConcurrencyKeys);
        keys.AddRange(reservation.BudgetKeys);
        string[] args =
        [
            reservation.TokenKeys.Length.ToString(CultureInfo.InvariantCulture),
            reservation.ConcurrencyKeys.Length.ToString(CultureInfo.InvariantCulture),
            reservation.BudgetKeys.Length.ToString(CultureInfo.InvariantCulture),
            reservation.Member,
            Num(actualTokens - reservation.Tokens),
            Num(actualCost - reservation.Cost),
        ];
        try
        {
            await _redis.RunAsync("EVALSHA", db => db.ScriptEvaluateAsync(Settle,
                keys.ConvertAll(k => (RedisKey)k).ToArray(), Array.ConvertAll(args, a => (RedisValue)a))).ConfigureAwait(false);
        }
        catch (Exception ex) when (RedisConnection.IsUnavailable(ex))
        {
            // Lost settlement: the window over-counts until it expires, the slot until its lease ends (documented).
        }
    }

    private static double Dbl(RedisResult r) => double.Parse((string)r!, CultureInfo.InvariantCulture);

    private static string Num(double v) => v.ToString("R", CultureInfo.InvariantCulture);

    private static string Ms(long v) => v.ToString(CultureInfo.InvariantCulture);
}
