using Gateway.Core.Scheduling;
using StackExchange.Redis;

namespace Gateway.State;

/// <summary>What this replica asks for on one worker at a sync.</summary>
/// <param name="WorkerId">The worker's id (its URL prefix: the same on every replica).</param>
/// <param name="Slots">The worker's slots (<c>MaxInFlightPerWorker</c>).</param>
/// <param name="InFlight">Requests this replica has dispatched there and not finished (in transit included).</param>
/// <param name="Want">How many slots this replica could use now: its in-flight plus what waits in its queue, at most <paramref name="Slots"/>.</param>
public readonly record struct SlotDemand(string WorkerId, int Slots, int InFlight, int Want);

/// <summary>
/// Splits each worker's slots across gateway replicas through Redis so the replicas together never hold more grants
/// than the worker has slots, while a replica may use every slot the others do not need (work-conserving).
/// Each replica keeps one hash <c>{prefix}slots:{replica}</c> (listed in the set <c>{prefix}slots</c>) (fields per worker: <c>g:</c> slots granted to it,
/// <c>d:</c> its demand, <c>i:</c> its in-flight count), expiring after <see cref="LeaseTtl"/> without a sync, so a
/// dead replica's grants and counts heal away. One Lua script per sync, atomic across replicas, computes per worker:
/// <list type="bullet">
/// <item>the max-min fair <em>target</em> of every live replica's demand (water-filling over the slots; with no
/// contention every demand is met in full);</item>
/// <item>the new <em>grant</em>: growing toward the target only into slots no other live replica holds (so the sum of
/// grants never exceeds the slots), shrinking to the target, but never below what this replica may have in flight
/// while the script runs (its in-flight count, or its limit in force if higher: the queue keeps dispatching during
/// the sync), so releasing an unused share takes two syncs.</item>
/// </list>
/// A replica dispatches to a worker up to min(grant, target) (<see cref="LimitOf"/>, the pure rule in <see cref="ReplicaSlotShare"/>): a replica over its target stops
/// taking new requests there and its grant falls as its requests finish, which frees slots the other replicas claim
/// at their next sync. Before the first sync nothing is granted (the caller syncs at once); while Redis is away each
/// replica keeps the larger of its last limit and an even split over the replicas it last saw (at least one slot),
/// so serving continues and the next sync reconciles. Thread-safe.
/// </summary>
public sealed class SharedSlots
{
    // KEYS[1] the set of replicas with slot hashes (dead ones leave it when their hash has expired). ARGV: [1] hash
    // prefix, [2] this replica, [3] lease ms, then (worker, slots, want, in flight, floor)*; floor = the most this
    // replica may have in flight there while the script runs (a grant never falls below it).
    // Returns grant, target, cluster in-flight per worker, then the number of live replicas.
    private const string Claim = """
        local base = ARGV[1]
        local me = ARGV[2]
        local mine = base .. me
        redis.call('SADD', KEYS[1], me)
        local others = {}
        for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
          if id ~= me then
            if redis.call('EXISTS', base .. id) == 1 then others[#others + 1] = base .. id
            else redis.call('SREM', KEYS[1], id) end
          end
        end
        local out = {}
        local n = (#ARGV - 3) / 5
        for i = 0, n - 1 do
          local w = ARGV[4 + i * 5]
          local slots = tonumber(ARGV[5 + i * 5])
          local want = tonumber(ARGV[6 + i * 5])
          local inflight = tonumber(ARGV[7 + i * 5])
          local floor = tonumber(ARGV[8 + i * 5])
          local held = 0
          local busy = inflight
          local wants = { want }
          for _, k in ipairs(others) do
            local v = redis.call('HMGET', k, 'g:' .. w, 'd:' .. w, 'i:' .. w)
            if v[1] then held = held + tonumber(v[1]) end
            if v[2] then wants[#wants + 1] = tonumber(v[2]) end
            if v[3] then busy = busy + tonumber(v[3]) end
          end
          table.sort(wants)
          local left = slots
          local level = slots
          for j = 1, #wants do
            local fair = left / (#wants - j + 1)
            if wants[j] <= fair then left = left - wants[j] else level = fair; break end
          end
          local target = math.min(want, math.ceil(level))
          local cur = tonumber(redis.call('HGET', mine, 'g:' .. w) or floor)
          local grant = target
          if target > cur then grant = math.max(cur, math.min(target, slots - held)) end
          if grant < floor then grant = floor end
          redis.call('HSET', mine, 'g:' .. w, grant, 'd:' .. w, want, 'i:' .. w, inflight)
          out[#out + 1] = grant
          out[#out + 1] = target
          out[#out + 1] = busy
        end
        redis.call('PEXPIRE', mine, ARGV[3])
        out[#out + 1] = #others + 1
        return out
        """;

    private readonly RedisConnection _redis;
    private readonly string _prefix;
    private readonly string _replica;
    private readonly object _lock = new();
    private readonly SemaphoreSlim _syncLock = new(1, 1);
    private Dictionary<string, Share> _shares = new(StringComparer.Ordinal);
    private int _replicas = 1;
    private State _state = State.Unknown;

    /// <summary>Creates the table for replica <paramref name="replicaId"/> under key prefix <paramref name="prefix"/>.</summary>
    public SharedSlots(RedisConnection redis, string prefix, string replicaId, TimeSpan? leaseTtl = null)
    {
        _redis = redis ?? throw new ArgumentNullException(nameof(redis));
        _prefix = prefix ?? "gw:";
        _replica = replicaId ?? throw new ArgumentNullException(nameof(replicaId));
        LeaseTtl = leaseTtl ?? TimeSpan.FromSeconds(10);
    }

    private enum State
    {
        Unknown,
        Shared,
        Away,
    }

    /// <summary>How long this replica's grants and counts live in Redis without a sync.</summary>
    public TimeSpan LeaseTtl { get; }

    /// <summary>True when the last sync reached Redis (limits are cluster-wide); false before it or while Redis is away.</summary>
    public bool IsShared
    {
        get
        {
            lock (_lock)
            {
                return _state == State.Shared;
            }
        }
    }

    /// <summary>Gateway replicas with live grants as of the last sync (this one included).</summary>
    public int Replicas
    {
        get
        {
            lock (_lock)
            {
                return _replicas;
            }
        }
    }

    /// <summary>
    /// How many requests this replica may have in flight on <paramref name="workerId"/> (of its <paramref name="slots"/>):
    /// min(grant, target) as of the last sync; 0 before the first sync; while Redis is away the larger of the last
    /// limit and an even split over the replicas last seen, at least one.
    /// </summary>
    public int LimitOf(string workerId, int slots)
    {
        lock (_lock)
        {
            ReplicaSlotShare? last = _shares.TryGetValue(workerId, out var s) ? s.Split : null;
            return _state switch
            {
                State.Shared => last?.Limit ?? 0,
                State.Away => ReplicaSlotShare.Fallback(last, slots, _replicas),
                _ => 0,
            };
        }
    }

    /// <summary>Requests in flight on <paramref name="workerId"/> from every live replica, as of the last sync.</summary>
    public long ClusterInFlight(string workerId)
    {
        lock (_lock)
        {
            return _shares.TryGetValue(workerId, out var s) ? s.ClusterInFlight : 0;
        }
    }

    /// <summary>
    /// Requests the other live replicas have in flight on all workers, as of the last sync (0 before it or while Redis is
    /// away). The fair scheduler counts them as a neighbour's work (<c>HierarchicalFairScheduler.SetRemoteInFlight</c>).
    /// </summary>
    public int OthersInFlight()
    {
        lock (_lock)
        {
            if (_state != State.Shared)
            {
                return 0;
            }

            long sum = 0;
            foreach (var s in _shares.Values)
            {
                sum += s.Others;
            }

            return (int)Math.Min(int.MaxValue, sum);
        }
    }

    /// <summary>Publishes this replica's demand and in-flight counts and refreshes its grants (one script).</summary>
    public async ValueTask SyncAsync(IReadOnlyList<SlotDemand> demands, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(demands);
        await _syncLock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            var args = new RedisValue[3 + demands.Count * 5];
            args[0] = _prefix + "slots:";
            args[1] = _replica;
            args[2] = Math.Max(1, (long)LeaseTtl.TotalMilliseconds);
            for (int i = 0; i < demands.Count; i++)
            {
                var d = demands[i];
                int inFlight = Math.Max(0, d.InFlight);
                args[3 + i * 5] = d.WorkerId;
                args[4 + i * 5] = d.Slots;
                args[5 + i * 5] = Math.Clamp(d.Want, 0, d.Slots);
                args[6 + i * 5] = inFlight;
                // The queue may dispatch up to the limit in force while this script runs: never grant less than that.
                args[7 + i * 5] = Math.Max(inFlight, LimitOf(d.WorkerId, d.Slots));
            }

            RedisResult[] reply;
            try
            {
                var r = await _redis.RunAsync("EVALSHA", db => db.ScriptEvaluateAsync(Claim, [(RedisKey)(_prefix + "slots")], args)).ConfigureAwait(false);
                reply = (RedisResult[])r!;
            }
            catch (Exception ex) when (RedisConnection.IsUnavailable(ex))
            {
                lock (_lock)
                {
                    _state = State.Away;
                }

                return;
            }

            var shares = new Dictionary<string, Share>(demands.Count, StringComparer.Ordinal);
            for (int i = 0; i < demands.Count; i++)
            {
                long busy = (long)reply[i * 3 + 2];
                shares[demands[i].WorkerId] = new Share(new ReplicaSlotShare((int)(long)reply[i * 3], (int)(long)reply[i * 3 + 1]), busy, Math.Max(0, busy - Math.Max(0, demands[i].InFlight)));
            }

            lock (_lock)
            {
                _shares = shares;
                _replicas = (int)(long)reply[^1];
                _state = State.Shared;
            }
        }
        finally
        {
            _syncLock.Release();
        }
    }

    /// <summary>A grant and the fair target, the cluster's in-flight count and the other replicas' part of it on one worker.</summary>
    private readonly record struct Share(ReplicaSlotShare Split, long ClusterInFlight, long Others);
}
