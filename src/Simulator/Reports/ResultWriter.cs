using System.Globalization;
using System.Text;
using System.Text.Json;
using Simulator.Simulation;

namespace Simulator.Reports;

/// <summary>
/// Writes result.json in the issue's shape. Deterministic: fixed field order, runs in command-line order, tenants in
/// ordinal order, numbers rounded to 6 significant decimals with the invariant culture; NaN (no samples) is null.
/// No wall-clock values, so two runs with the same inputs and seed are byte-identical.
/// </summary>
public static class ResultWriter
{
    /// <summary>Serialises the result document.</summary>
    public static byte[] ToJson(string trace, int requests, double ideal, IReadOnlyList<RunResult> runs)
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, new JsonWriterOptions { Indented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            w.WriteStartObject();
            w.WriteString("trace", trace);
            w.WriteNumber("requests", requests);
            Num(w, "ideal_prefix_hit_ratio", ideal);
            w.WriteStartArray("runs");
            foreach (var r in runs)
            {
                w.WriteStartObject();
                w.WriteString("routing", r.Routing);
                w.WriteString("scheduling", r.Scheduling);
                w.WriteString("retention", r.Retention);
                w.WriteBoolean("retention_guard", r.RetentionGuard);
                w.WriteNumber("seed", r.Seed);
                Pct(w, "ttft_ms", r.TtftMs);
                Pct(w, "tpot_ms", r.TpotMs);
                Pct(w, "e2e_ms", r.E2eMs);
                Num(w, "prefix_hit_ratio", r.PrefixHitRatio);
                Num(w, "throughput_tokens_per_s", r.ThroughputTokensPerSecond);
                w.WriteNumber("completed", r.Completed);
                w.WriteNumber("rejected", r.Rejected);
                Num(w, "worker_load_max_over_min", r.WorkerLoadMaxOverMin);
                Num(w, "jain_index", r.JainIndex);
                Num(w, "contended_seconds", r.ContendedSeconds);
                Num(w, "makespan_seconds", r.MakespanSeconds);
                w.WriteNumber("preemptions", r.Preemptions);
                w.WriteNumber("host_kv_blocks", r.HostKvBlocks);
                w.WriteNumber("host_reloaded_tokens", r.HostReloadedTokens);
                w.WriteNumber("host_retains", r.HostRetains);
                w.WriteNumber("prefetched_blocks", r.PrefetchedBlocks);
                w.WriteBoolean("locality", r.Locality);
                Num(w, "lag_bound", r.LagBound);
                w.WriteNumber("locality_picks", r.LocalityPicks);
                w.WriteNumber("locality_reorders", r.LocalityReorders);
                Num(w, "max_dispatch_lag", r.MaxDispatchLag);
                w.WriteString("program_priority", r.ProgramPriority);
                w.WriteNumber("resumed_turns_boosted", r.ResumedTurnsBoosted);
                w.WriteNumber("reserve", r.Reserve);
                w.WriteNumber("reserved_picks", r.ReservedPicks);
                w.WriteNumber("reserve_lent", r.ReserveLent);
                w.WriteNumber("reserve_reclaimed", r.ReserveReclaimed);
                w.WriteNumber("urgent_dispatches", r.UrgentDispatches);
                w.WriteStartArray("tenants");
                foreach (var t in r.Tenants)
                {
                    w.WriteStartObject();
                    w.WriteString("tenant", t.Tenant);
                    Num(w, "weight", t.Weight);
                    Num(w, "service_tokens", t.ServiceTokens);
                    Num(w, "share", t.Share);
                    Num(w, "entitled_share", t.EntitledShare);
                    Pct(w, "ttft_ms", t.TtftMs);
                    w.WriteNumber("completed", t.Completed);
                    w.WriteEndObject();
                }

                w.WriteEndArray();
                Num(w, "reprefill_tokens_resumed", r.ReprefillTokensResumed);
                Num(w, "pinned_block_seconds", r.PinnedBlockSeconds);
                Num(w, "pinned_unused_block_seconds", r.PinnedUnusedBlockSeconds);
                Resumed(w, "resumed_after_tool", r.ResumedAfterTool);
                Resumed(w, "resumed_after_human", r.ResumedAfterHuman);
                if (r.AgentWorkingSet is { } ws)
                {
                    w.WriteStartObject("agent_working_set");
                    Num(w, "tau_seconds", ws.TauSeconds);
                    Num(w, "mean_alive_tokens", ws.MeanAliveTokens);
                    Num(w, "mean_recent_tokens", ws.MeanRecentTokens);
                    Num(w, "p90_recent_tokens", ws.P90RecentTokens);
                    Num(w, "pool_tokens", ws.PoolTokens);
                    w.WriteEndObject();
                }

                if (r.RetentionStats is { } rs)
                {
                    Retention(w, rs);
                }

                w.WriteEndObject();
            }

            w.WriteEndArray();
            var aggregates = SeedAggregate.Of(runs);
            if (aggregates.Count > 0)
            {
                Aggregates(w, aggregates);
            }

            w.WriteEndObject();
        }

        ms.WriteByte((byte)'\n');
        return ms.ToArray();
    }

    /// <summary>Rounds to 6 decimals (stable across platforms for the values we produce).</summary>
    internal static double Round(double v) => Math.Round(v, 6, MidpointRounding.ToEven);

    /// <summary>Writes a number rounded like every figure of result.json, or null for NaN / infinity.</summary>
    internal static void Num(Utf8JsonWriter w, string name, double v)
    {
        if (double.IsNaN(v) || double.IsInfinity(v))
        {
            w.WriteNull(name);
        }
        else
        {
            w.WriteNumber(name, Round(v));
        }
    }

    private static void Resumed(Utf8JsonWriter w, string name, ResumedStats s)
    {
        w.WriteStartObject(name);
        w.WriteNumber("turns", s.Turns);
        w.WriteNumber("turns_with_reprefill", s.TurnsWithReprefill);
        w.WriteNumber("reusable_tokens", s.ReusableTokens);
        w.WriteNumber("reprefill_tokens", s.ReprefillTokens);
        w.WriteStartObject("reprefill_by_cause");
        w.WriteNumber("moved", s.ByCause[(int)ReprefillCause.Moved]);
        w.WriteNumber("evicted_before_arrival", s.ByCause[(int)ReprefillCause.EvictedBeforeArrival]);
        w.WriteNumber("evicted_after_arrival", s.ByCause[(int)ReprefillCause.EvictedAfterArrival]);
        w.WriteEndObject();
        w.WriteStartObject("reprefill_by_pin");
        w.WriteNumber("none", s.ByPinFate[(int)PinFate.None]);
        w.WriteNumber("held", s.ByPinFate[(int)PinFate.Held]);
        w.WriteNumber("expired", s.ByPinFate[(int)PinFate.Expired]);
        w.WriteNumber("dropped", s.ByPinFate[(int)PinFate.Dropped]);
        w.WriteEndObject();
        w.WriteEndObject();
    }

    // The policy's shadow score: what an operator reads before enabling hints.
    private static void Retention(Utf8JsonWriter w, Gateway.Core.Agents.RetentionStats s)
    {
        w.WriteStartObject("retention_stats");
        w.WriteNumber("retains", s.Retains);
        w.WriteNumber("releases", s.Releases);
        w.WriteNumber("skipped", s.Skipped);
        w.WriteNumber("budget_skipped", s.BudgetSkipped);
        w.WriteNumber("budget_evictions", s.BudgetEvictions);
        w.WriteNumber("engine_drops", s.EngineDrops);
        w.WriteNumber("host_retains", s.HostRetains);
        w.WriteNumber("guard_skips", s.GuardSkips);
        w.WriteNumber("renewals", s.Renewals);
        w.WriteNumber("gaps_closed", s.GapsClosed);
        w.WriteNumber("tool_gaps_closed", s.ToolGapsClosed);
        w.WriteNumber("hits", s.Hits);
        w.WriteNumber("misses", s.Misses);
        w.WriteNumber("uncovered_tool_gaps", s.Uncovered);
        Num(w, "hit_rate", s.HitRate);
        Num(w, "decided_pinned_block_seconds", s.PinnedBlockSeconds);
        Num(w, "decided_unused_block_seconds", s.UnusedBlockSeconds);
        Num(w, "saved_prefill_seconds", s.SavedPrefillSeconds);
        Num(w, "mean_abs_log_gap_error", s.MeanAbsLogError);
        w.WriteEndObject();
    }

    private static void Aggregates(Utf8JsonWriter w, List<SeedAggregate> aggregates)
    {
        w.WriteStartArray("aggregates");
        foreach (var a in aggregates)
        {
            w.WriteStartObject();
            w.WriteString("routing", a.Routing);
            w.WriteString("scheduling", a.Scheduling);
            w.WriteString("retention", a.Retention);
            w.WriteStartArray("seeds");
            foreach (int seed in a.Seeds)
            {
                w.WriteNumberValue(seed);
            }

            w.WriteEndArray();
            Num(w, "reprefill_tokens_resumed", a.ReprefillTokensResumed);
            Num(w, "reprefill_tokens_after_tool", a.ReprefillTokensAfterTool);
            Num(w, "reprefill_tokens_after_human", a.ReprefillTokensAfterHuman);
            Num(w, "pinned_block_seconds", a.PinnedBlockSeconds);
            Num(w, "pinned_unused_block_seconds", a.PinnedUnusedBlockSeconds);
            Num(w, "unused_share", a.UnusedShare);
            Num(w, "prefix_hit_ratio_mean", a.PrefixHitRatioMean);
            Num(w, "ttft_ms_p99_median", a.TtftP99Median);
            w.WriteStartArray("tenants");
            foreach (var t in a.Tenants)
            {
                w.WriteStartObject();
                w.WriteString("tenant", t.Tenant);
                Num(w, "ttft_ms_p99_median", t.TtftP99Median);
                Num(w, "ttft_ms_p99_min", t.TtftP99Min);
                Num(w, "ttft_ms_p99_max", t.TtftP99Max);
                Num(w, "ttft_ms_p99_pooled", t.TtftP99Pooled);
                w.WriteEndObject();
            }

            w.WriteEndArray();
            w.WriteEndObject();
        }

        w.WriteEndArray();
    }

    private static void Pct(Utf8JsonWriter w, string name, Percentiles p)
    {
        w.WriteStartObject(name);
        Num(w, "p50", p.P50);
        Num(w, "p90", p.P90);
        Num(w, "p99", p.P99);
        w.WriteEndObject();
    }

    /// <summary>Markdown summary table (one row per run, then per-tenant rows when there are several tenants).</summary>
    public static string ToMarkdown(string trace, int requests, double ideal, IReadOnlyList<RunResult> runs, string commandLine)
    {
        var c = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        sb.Append("# Simulation summary\n\n");
        sb.Append(c, $"Trace `{trace}`: {requests} requests; ideal (infinite cache) prefix-hit ratio {ideal:F3}.\n\n");
        sb.Append("Command: `").Append(commandLine).Append("`\n\n");
        bool seeded = runs.Select(r => r.Seed).Distinct().Count() > 1;
        sb.Append("| routing | scheduling | retention |").Append(seeded ? " seed |" : "").Append(" TTFT p50 ms | TTFT p90 ms | TTFT p99 ms | TPOT p50 ms | E2E p50 ms | E2E p99 ms | prefix hit | tok/s | done | rej | load max/min | Jain | contended s |\n");
        sb.Append("|---|---|---|").Append(seeded ? "---:|" : "").Append("---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        foreach (var r in runs)
        {
            sb.Append(c, $"| {r.Routing} | {r.Scheduling} | {r.Retention} |{(seeded ? $" {r.Seed} |" : "")} {F(r.TtftMs.P50)} | {F(r.TtftMs.P90)} | {F(r.TtftMs.P99)} | {F(r.TpotMs.P50)} | {F(r.E2eMs.P50)} | {F(r.E2eMs.P99)} | {r.PrefixHitRatio:F3} | {r.ThroughputTokensPerSecond:F0} | {r.Completed} | {r.Rejected} | {r.WorkerLoadMaxOverMin:F2} | {r.JainIndex:F3} | {r.ContendedSeconds:F1} |\n");
        }

        if (seeded)
        {
            sb.Append("\n## Across seeds (token counts summed; TTFT p99: median of the per-seed p99s [min–max], pooled p99)\n\n");
            sb.Append("| routing | scheduling | retention | seeds | re-prefill after tool gaps | all resumed turns | pinned block-s | unused share | prefix hit (mean) | tenant | TTFT p99 median [min–max] ms | pooled p99 ms |\n");
            sb.Append("|---|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|\n");
            foreach (var a in SeedAggregate.Of(runs))
            {
                foreach (var t in a.Tenants)
                {
                    sb.Append(c, $"| {a.Routing} | {a.Scheduling} | {a.Retention} | {a.Seeds.Count} | {a.ReprefillTokensAfterTool:F0} | {a.ReprefillTokensResumed:F0} | {a.PinnedBlockSeconds:F0} | {(double.IsNaN(a.UnusedShare) ? "-" : a.UnusedShare.ToString("P1", c))} | {a.PrefixHitRatioMean:F4} | {t.Tenant} | {F(t.TtftP99Median)} [{F(t.TtftP99Min)}–{F(t.TtftP99Max)}] | {F(t.TtftP99Pooled)} |\n");
                }
            }
        }

        if (runs.Any(r => r.AgentWorkingSet is not null))
        {
            sb.Append("\n## Agent KV working set (averaged over agent turn arrivals; W(τ) = contexts running or used within τ s, Denning)\n\n");
            sb.Append("| routing | scheduling | retention | seed | alive sessions' contexts (tokens) | W(τ) mean | W(τ) p90 | τ s | pool (tokens) | pool / W(τ) mean |\n");
            sb.Append("|---|---|---|---:|---:|---:|---:|---:|---:|---:|\n");
            foreach (var r in runs)
            {
                if (r.AgentWorkingSet is { } ws)
                {
                    sb.Append(c, $"| {r.Routing} | {r.Scheduling} | {r.Retention} | {r.Seed} | {ws.MeanAliveTokens:F0} | {ws.MeanRecentTokens:F0} | {ws.P90RecentTokens:F0} | {ws.TauSeconds:F0} | {ws.PoolTokens} | {(ws.MeanRecentTokens > 0 ? ws.PoolTokens / ws.MeanRecentTokens : 0):F2} |\n");
                }
            }
        }

        if (runs.Any(r => r.LocalityPicks > 0))
        {
            sb.Append("\n## Locality within the lag bound (hfair)\n\n");
            sb.Append("| routing | scheduling | picks | reordered vs strict fair order | max lag at pick (cost units) | bound |\n");
            sb.Append("|---|---|---:|---:|---:|---:|\n");
            foreach (var r in runs.Where(r => r.LocalityPicks > 0))
            {
                sb.Append(c, $"| {r.Routing} | {r.Scheduling} | {r.LocalityPicks} | {r.LocalityReorders} | {r.MaxDispatchLag:F0} | {r.LagBound:F0} |\n");
            }
        }

        if (runs.Count > 0 && runs[0].Tenants.Count > 1)
        {
            sb.Append("\n## Tenants (share of weighted service while ≥ 2 tenants were queued)\n\n");
            sb.Append("| routing | scheduling | tenant | weight | service tokens | share | entitled | TTFT p50 ms | TTFT p99 ms |\n");
            sb.Append("|---|---|---|---:|---:|---:|---:|---:|---:|\n");
            foreach (var r in runs)
            {
                foreach (var t in r.Tenants)
                {
                    sb.Append(c, $"| {r.Routing} | {r.Scheduling} | {t.Tenant} | {t.Weight:G4} | {t.ServiceTokens:F0} | {t.Share:F3} | {t.EntitledShare:F3} | {F(t.TtftMs.P50)} | {F(t.TtftMs.P99)} |\n");
                }
            }
        }

        return sb.ToString();
    }

    private static string F(double v) => double.IsNaN(v) ? "-" : v.ToString("F1", CultureInfo.InvariantCulture);
}
