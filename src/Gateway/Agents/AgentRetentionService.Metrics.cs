namespace Gateway.Agents;

/// <summary>The agent layer's instruments (Prometheus names in operations.md).</summary>
public sealed partial class AgentRetentionService
{
    // Shadow / prediction score read from the policy's RetentionStats under the lock before each scrape: identical in
    // shadow and enabled mode, so an operator can validate the predictor before enabling hints.
    private void CreateInstruments(Telemetry.GatewayMetrics metrics)
    {
        var f = metrics.Factory;
        string[] labels = ["policy", "mode"];
        var decisions = f.CreateCounter("gateway_agent_retention_decisions_total",
            "Retention decisions: retain (pin sent or, in shadow mode, would be), release, skip (not worth it or no budget), budget_eviction (a pin released for a more valuable one).", [.. labels, "kind"]);
        var pinsDropped = f.CreateCounter("gateway_agent_retention_pins_dropped_total",
            "Pins the workers dropped under memory pressure before their session came back (pin_dropped KV events; enabled mode, kv-aware routing with KV events).", labels);
        var gaps = f.CreateCounter("gateway_agent_retention_gaps_total",
            "Session gaps by outcome: hit (the session came back within the pin's TTL), miss (the pin expired or was released unused), uncovered (a tool gap closed with no pin), other (closed gaps with no pin after a human turn), superseded (the session's next turns were served by another gateway replica: not scored, not learnt from).", [.. labels, "outcome"]);
        var blockSeconds = f.CreateCounter("gateway_agent_retention_block_seconds_total",
            "KV block-seconds pinned as decided: pinned (all), unused (pins nobody came back to).", [.. labels, "state"]);
        var savedPrefill = f.CreateCounter("gateway_agent_retention_saved_prefill_seconds_total",
            "Prefill seconds the hits save (context prefill time of each session that came back to its pin).", labels);
        var predictionError = f.CreateGauge("gateway_agent_gap_prediction_error",
            "Mean |ln(actual tool gap / predicted median)| over closed tool gaps (0.69: off by 2x on geometric average).", labels);
        var predictions = f.CreateCounter("gateway_agent_gap_predictions_total", "Closed tool gaps scored against their prediction.", labels);
        var sideCalls = f.CreateCounter("gateway_agent_side_calls_total",
            "Side calls of agent sessions (a short request that does not extend the session's last prompt, answered without tool calls): they leave the session's gap open.", labels);
        var resumed = f.CreateCounter("gateway_agent_resumed_turns_total",
            "Turns that closed a tool gap and were served as resumed turns (ahead of fresh work of their tenant; Gateway:Agents:ResumedTurnPriority).", labels);
        var hints = f.CreateCounter("gateway_agent_retention_hints_total", "Retain/release requests sent to workers (enabled mode): sent, failed.", [.. labels, "result"]);
        var prefetches = f.CreateCounter("gateway_agent_prefetches_total",
            "Prefetches of idle agent contexts from a worker's host tier (enabled mode, workers with a host tier): scheduled, sent, failed, cancelled (the session's turn came first), skipped (worker draining or without room), dropped (pending cap).", [.. labels, "result"]);
        var prefetchedBlocks = f.CreateCounter("gateway_agent_prefetched_blocks_total", "KV blocks the workers copied back into HBM for the gateway's prefetches.", labels);
        string p = _tags[0], m = _tags[1];
        metrics.OnCollect(() =>
        {
            lock (_lock)
            {
                var s = _policy.Stats;
                decisions.WithLabels(p, m, "retain").IncTo(s.Retains);
                decisions.WithLabels(p, m, "release").IncTo(s.Releases);
                decisions.WithLabels(p, m, "skip").IncTo(s.Skipped);
                decisions.WithLabels(p, m, "budget_eviction").IncTo(s.BudgetEvictions);
                pinsDropped.WithLabels(p, m).IncTo(s.EngineDrops);
                gaps.WithLabels(p, m, "hit").IncTo(s.Hits);
                gaps.WithLabels(p, m, "miss").IncTo(s.Misses);
                gaps.WithLabels(p, m, "uncovered").IncTo(s.Uncovered);
                gaps.WithLabels(p, m, "other").IncTo(s.GapsClosed - s.Hits - s.Uncovered);
                gaps.WithLabels(p, m, "superseded").IncTo(s.Superseded);
                blockSeconds.WithLabels(p, m, "pinned").IncTo(s.PinnedBlockSeconds);
                blockSeconds.WithLabels(p, m, "unused").IncTo(s.UnusedBlockSeconds);
                savedPrefill.WithLabels(p, m).IncTo(s.SavedPrefillSeconds);
                predictionError.WithLabels(p, m).Set(s.MeanAbsLogError);
                predictions.WithLabels(p, m).IncTo(s.AbsLogErrorCount);
            }

            sideCalls.WithLabels(p, m).IncTo(Interlocked.Read(ref _sideCalls));
            resumed.WithLabels(p, m).IncTo(Interlocked.Read(ref _resumedTurns));
            hints.WithLabels(p, m, "sent").IncTo(Interlocked.Read(ref _hintsSent));
            hints.WithLabels(p, m, "failed").IncTo(Interlocked.Read(ref _hintsFailed));
            var pf = _prefetch.Counts;
            prefetches.WithLabels(p, m, "scheduled").IncTo(pf.Scheduled);
            prefetches.WithLabels(p, m, "sent").IncTo(pf.Sent);
            prefetches.WithLabels(p, m, "failed").IncTo(pf.Failed);
            prefetches.WithLabels(p, m, "cancelled").IncTo(pf.Cancelled);
            prefetches.WithLabels(p, m, "skipped").IncTo(pf.Skipped);
            prefetches.WithLabels(p, m, "dropped").IncTo(pf.Dropped);
            prefetchedBlocks.WithLabels(p, m).IncTo(pf.LoadedBlocks);
        });
    }
}
