namespace Gateway.Core.Routing.KvAware;

/// <summary><c>kv-aware</c>'s candidate selection: near-least-cost window, hot-spot guards and session affinity (Algorithms 5-7 of docs/policies/kv-aware.md).</summary>
public sealed partial class KvAwarePolicy
{
    private RouteDecision Decide(RouteRequest r, IReadOnlyList<WorkerInfo> workers, ReadOnlySpan<int> matched, Span<double> cost, Span<double> firstToken, Span<double> load, Span<double> pressure, ReadOnlySpan<int> hostBlocks)
    {
        int n = workers.Count;
        double min = double.PositiveInfinity, minFirstToken = 0;
        _idle.ExpireNow();
        for (int i = 0; i < n; i++)
        {
            var w = workers[i];
            pressure[i] = 0;
            if (!w.Eligible)
            {
                cost[i] = firstToken[i] = double.PositiveInfinity;
                continue;
            }

            int cached = CachedTokens(MatchedOf(w, matched), r);
            int reload = (uint)w.Index < (uint)hostBlocks.Length ? hostBlocks[w.Index] * r.BlockSize : 0;
            double prefill = PrefillSeconds(w, r.PromptTokens, cached);
            firstToken[i] = QueueSeconds(w) + prefill + reload * w.HostReloadSecondsPerToken;
            pressure[i] = PressureSeconds(w, r, cached);
            cost[i] = firstToken[i] + DecodeSeconds(w, r.PromptTokens, r.ExpectedOutputTokens) + pressure[i] + QueuedDelaySeconds(w, prefill);
            if (cost[i] < min)
            {
                min = cost[i];
                minFirstToken = firstToken[i];
            }
        }

        if (double.IsPositiveInfinity(min))
        {
            return RouteDecision.None;
        }

        // Load-spread guard (Preble): recent work above BalanceFactor x the least-loaded worker's (+ slack) is charged
        // as seconds of extra waiting, at the worker's prefill rate, on top of its cost. It used to exclude such a worker
        // outright, which ignored what leaving costs: an agent session's 100k-token context re-prefilled elsewhere (tens
        // of seconds) was traded for a recent-work imbalance worth a few seconds, and the turn's own prefill made the
        // new worker the heavy one, so sessions ping-ponged. As a charge in the cost's unit, a holder is left exactly
        // when the imbalance outweighs the re-prefill its cached match saves, which cost[] already counts.
        int rawBest = -1;
        if (_options.BalanceFactor > 0)
        {
            long now = _time.GetUtcNow().UtcTicks;
            double minLoad = double.PositiveInfinity;
            for (int i = 0; i < n; i++)
            {
                int idx = workers[i].Index;
                load[i] = (uint)idx < (uint)_work.Length ? DecayedWork(idx, now) : 0;
                if (!double.IsPositiveInfinity(cost[i]))
                {
                    minLoad = Math.Min(minLoad, load[i]);
                    if (rawBest < 0 || cost[i] < cost[rawBest])
                    {
                        rawBest = i;
                    }
                }
            }

            double limit = minLoad * _options.BalanceFactor + _options.BalanceSlackTokens;
            double newMin = double.PositiveInfinity, newMinFirst = 0;
            for (int i = 0; i < n; i++)
            {
                if (double.IsPositiveInfinity(cost[i]))
                {
                    load[i] = 0;
                    continue;
                }

                double tps = workers[i].PrefillTokensPerSecond > 0 ? workers[i].PrefillTokensPerSecond : 10_000;
                double penalty = load[i] > limit ? (load[i] - limit) / tps : 0;
                load[i] = penalty;
                cost[i] += penalty;
                firstToken[i] += penalty;
                if (cost[i] < newMin)
                {
                    newMin = cost[i];
                    newMinFirst = firstToken[i];
                }
            }

            min = newMin;
            minFirstToken = newMinFirst;
        }

        int chosen = -1;
        string reason = "load";
        bool rebind = false;

        // Session affinity: back to the last worker unless it is overloaded (or gone: rebind).
        // A binding from shared state (another replica served the session's last turn) wins over this host's own.
        string? boundId = null;
        int boundIndex = -1;
        if (r.SessionId is { Length: > 0 } session)
        {
            if (r.SharedBinding is { Length: > 0 } shared)
            {
                boundId = shared;
            }
            else if (_sessions.TryGet(session, out var id, out var index))
            {
                (boundId, boundIndex) = (id, index);
            }
        }

        if (boundId is not null)
        {
            int b = FindWorker(workers, boundId, boundIndex);
            if (b >= 0 && workers[b].Eligible && StaysOnHolder(workers[b], b, cost, firstToken, min, minFirstToken))
            {
                chosen = b;
                reason = "session";
            }
            else
            {
                rebind = true;
            }
        }

        if (chosen < 0)
        {
            // Near-least-cost candidates; the longest cached match among them wins, then the least memory pressure
            // (an eviction is not noise to spread over, whatever its size next to a long prefill), ties drawn at random.
            // The window is relative to the time-to-first-token part: the decode part is nearly the same everywhere
            // and would otherwise widen the window until it swallows real queue differences.
            double limit = min + minFirstToken * _options.TieRelativeEpsilon + _options.TieAbsoluteSeconds;
            int bestMatch = -1, ties = 0;
            long now = _time.GetUtcNow().UtcTicks;
            for (int i = 0; i < n; i++)
            {
                if (cost[i] > limit)
                {
                    continue;
                }

                int m = MatchedOf(workers[i], matched);
                if (m > bestMatch || (m == bestMatch && pressure[i] < pressure[chosen]))
                {
                    bestMatch = m;
                    chosen = i;
                    ties = 1;
                }
                else if (m == bestMatch && pressure[i] == pressure[chosen])
                {
                    int byWork = _options.TieByRecentWork ? RecentWorkOf(workers[i], now).CompareTo(RecentWorkOf(workers[chosen], now)) : 0;
                    if (byWork < 0)
                    {
                        chosen = i;
                        ties = 1;
                    }
                    else if (byWork == 0 && _random.Next(++ties) == 0)
                    {
                        chosen = i;
                    }
                }
            }

            reason = bestMatch > 0 ? "affinity" : "load";

            // Hot-prefix guard: the holder's queue is past the bound → replicate onto the cheapest non-holder.
            if (bestMatch > 0 && QueueSeconds(workers[chosen]) > _options.SpillQueueSeconds)
            {
                int alt = -1;
                ties = 0;
                for (int i = 0; i < n; i++)
                {
                    if (i == chosen || double.IsPositiveInfinity(cost[i]) || MatchedOf(workers[i], matched) >= bestMatch)
                    {
                        continue;
                    }

                    if (alt < 0 || cost[i] < cost[alt])
                    {
                        alt = i;
                        ties = 1;
                    }
                    else if (cost[i] == cost[alt] && _random.Next(++ties) == 0)
                    {
                        alt = i;
                    }
                }

                if (alt >= 0 && firstToken[alt] <= firstToken[chosen] * _options.SpillMaxCostRatio)
                {
                    chosen = alt;
                    reason = "spill";
                }
            }

            if (rebind)
            {
                reason = "session-rebind";
            }
            else if (rawBest >= 0 && chosen != rawBest && load[rawBest] > 0 && reason != "spill")
            {
                reason = "rebalance";
            }
        }

        int predicted = CachedTokens(MatchedOf(workers[chosen], matched), r);
        int bestOther = 0;
        for (int i = 0; i < n; i++)
        {
            if (i != chosen && workers[i].Eligible)
            {
                bestOther = Math.Max(bestOther, CachedTokens(MatchedOf(workers[i], matched), r));
            }
        }

        return new RouteDecision(chosen, predicted, bestOther, reason);
    }

    /// <summary>
    /// Whether a session stays on the worker <paramref name="b"/> that holds it. A holder with a host tier is compared on
    /// time to first token only (queue, load charge, prefill or reload of what it lacks) against the best estimate
    /// anywhere: the tier keeps the session's context for long, and comparing whole costs moved sessions for
    /// differences in the decode estimate (the decode batch of this instant projected over the whole answer) whenever
    /// another worker's first token was near 0, so their later turns re-prefilled contexts the holder still had. An
    /// HBM-only holder keeps the whole-cost rule (its decode batch also stands for memory it is short of): the first-token
    /// rule re-prefilled more there on the WEKA agent trace (docs/policies/agent-retention.md, "Routing of resumed turns").
    /// </summary>
    private bool StaysOnHolder(WorkerInfo holder, int b, ReadOnlySpan<double> cost, ReadOnlySpan<double> firstToken, double min, double minFirstToken)
    {
        double slack = _options.TieAbsoluteSeconds;
        return holder.HostReloadSecondsPerToken > 0 || holder.HostKvBlocksTotal > 0
            ? firstToken[b] <= BestFirstToken(firstToken) * _options.SessionOverloadFactor + slack
            : cost[b] - min <= minFirstToken * (_options.SessionOverloadFactor - 1) + slack;
    }

    private static double BestFirstToken(ReadOnlySpan<double> firstToken)
    {
        double best = double.PositiveInfinity;
        foreach (double f in firstToken)
        {
            best = Math.Min(best, f);
        }

        return best;
    }

    private static int FindWorker(IReadOnlyList<WorkerInfo> workers, string id, int index)
    {
        if ((uint)index < (uint)workers.Count && workers[index].Id == id)
        {
            return index;
        }

        for (int i = 0; i < workers.Count; i++)
        {
            if (workers[i].Id == id)
            {
                return i;
            }
        }

        return -1;
    }
}
