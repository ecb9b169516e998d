using System.CommandLine;
using Simulator;
using Simulator.Traces;

// Simulator CLI: replays a trace through the gateway's policies and the worker's engine model in virtual time.
// See docs/simulator.md for every flag and the model.
var trace = new Option<string?>("--trace") { Description = "trace file, or a folder of session files (weka)" };
var format = new Option<string?>("--format") { Description = "mooncake | weka | azure | canonical" };
var scenarioFile = new Option<string?>("--scenario") { Description = "JSON scenario file (flags override it)" };
var workers = new Option<int?>("--workers") { Description = "workers (one engine each), default 4" };
var profile = new Option<string?>("--profile") { Description = "engine profile, default h100-llama3-8b" };
var kvBlocks = new Option<int?>("--kv-blocks") { Description = "KV blocks per worker (0: profile default)" };
var hostKvBlocks = new Option<int?>("--host-kv-blocks") { Description = "host-memory KV tier per worker in blocks, for every run of the invocation (0: none, default; -1: 2x the HBM pool, HiCache's ratio)" };
var maxPinned = new Option<double?>("--max-pinned-fraction") { Description = "largest share of an engine's KV blocks pins may hold, default 0.5 (as the worker)" };
var blockSize = new Option<int?>("--block-size") { Description = "engine block size in tokens, default 16" };
var maxBatch = new Option<int?>("--max-batch-tokens") { Description = "per-step token budget, default 8192" };
var longPrefill = new Option<int?>("--long-prefill-threshold") { Description = "engine caps a prefill chunk at N tokens while others want the step (vLLM long_prefill_token_threshold), default 0 = off" };
var maxRunning = new Option<int?>("--max-running") { Description = "running sequences per engine, default 256" };
var maxWaiting = new Option<int?>("--max-waiting") { Description = "capacity: requests waiting in an engine before the gateway holds more, default 4" };
var maxPending = new Option<int?>("--max-pending-prefill") { Description = "capacity: prompt tokens sent to a worker and not yet prefilled before the gateway holds more, default 0 (off)" };
var kvHigh = new Option<double?>("--kv-high-watermark") { Description = "capacity: a worker whose KV blocks in use reach this fraction takes no new request, default 0 (off)" };
var capacity = new Option<string?>("--capacity") { Description = "dispatch capacity rule: engine (default: engine queue below --max-waiting) | slots (the gateway's: --max-in-flight slots per worker, only the used ones while saturated)" };
var maxInFlight = new Option<int?>("--max-in-flight") { Description = "capacity slots: requests in flight per worker, default 32 (the gateway's MaxInFlightPerWorker)" };
var maxModelLen = new Option<int?>("--max-model-length") { Description = "longest prompt+output an engine accepts, default 1048576" };
var weights = new Option<string?>("--tenant-weights") { Description = "\"org-a=2,org-a/k1=1,org-b=1\"" };
var rates = new Option<string?>("--tenant-rates") { Description = "arrival-rate multipliers, \"org-b=10\"" };
var mix = new Option<string?>("--tenant-mix") { Description = "root sessions per synthetic tenant, \"tenant-0=10\" (default 1 each)" };
var exclude = new Option<string?>("--exclude-tenants") { Description = "drop these tenants' requests after selection, \"tenant-0\"" };
var locality = new Option<string?>("--locality") { Description = "on (default) | off: hfair's locality pick on dispatch" };
var lagBound = new Option<double?>("--lag-bound") { Description = "hfair locality lag bound in cost units, default 4096" };
var reserve = new Option<int?>("--reserve") { Description = "hfair: free dispatch slots held back for tenants not over their in-flight share, default 1 (0: off)" };
var overShare = new Option<double?>("--over-share-factor") { Description = "hfair: a tenant holding this many times its weighted share of the in-flight requests may not take a reserved slot, default 1.5" };
var underShare = new Option<int?>("--under-share-priority") { Description = "hfair: engine priority of a request dispatched within its tenant's share, default 1 (0: no hint)" };
var overdraw = new Option<string?>("--overdraw") { Description = "on | off (default, as one gateway): with no slot free and none lent, an under-share request is released beyond capacity" };
var exclusivePrefill = new Option<string?>("--exclusive-priority-prefill") { Description = "on (default) | off: an engine step's prefill tokens go only to its highest prefilling priority" };
var lowPrefill = new Option<int?>("--low-priority-prefill") { Description = "engine: at most N prefill tokens per step for lower priorities while urgent work was submitted in the last 10 s, default 2048 (0: off)" };
var serialPrefill = new Option<string?>("--serial-urgent-prefill") { Description = "on (default) | off: an engine step prefills at most one urgent (priority above 0) prompt" };
var timeScale = new Option<double?>("--time-scale") { Description = "open-loop arrivals X times faster (start / X)" };
var maxRequests = new Option<int?>("--max-requests") { Description = "keep the first N requests" };
var maxSessions = new Option<int?>("--max-sessions") { Description = "keep the first N root sessions" };
var sessionRate = new Option<double?>("--session-rate") { Description = "root sessions start as a Poisson process of R/s" };
var mixTrace = new Option<string?>("--mix-trace") { Description = "second trace replayed as non-agent one-shot traffic (tenant non-agent)" };
var mixFormat = new Option<string?>("--mix-format") { Description = "format of --mix-trace, default azure" };
var mixRate = new Option<double?>("--mix-rate") { Description = "non-agent requests arrive as a Poisson process of R/s (0: recorded times)" };
var mixMax = new Option<int?>("--mix-max-requests") { Description = "keep the first N non-agent requests" };
var tenants = new Option<int?>("--tenants") { Description = "spread a tenant-less trace over N synthetic tenants" };
var salt = new Option<string?>("--cache-salt") { Description = "tenant (default) | org | none" };
var kvEvents = new Option<string?>("--kv-events") { Description = "on (default) | off: relay engine KV events to kv-aware's precise index" };
var seed = new Option<int?>("--seed") { Description = "random seed, default 1" };
var seeds = new Option<string?>("--seeds") { Description = "repeat every combination with these seeds (\"1-5\" or \"1,2,3\") and add aggregates across them to the reports" };
var routing = new Option<string?>("--routing") { Description = "routing policies, comma separated" };
var scheduling = new Option<string?>("--scheduling") { Description = "scheduling policies, comma separated" };
var retention = new Option<string?>("--retention") { Description = "retention policies, comma separated: off, fixed:SECONDS, predictive, oracle[:SECONDS] (clairvoyant reference)" };
var retentionCost = new Option<double?>("--retention-cost") { Description = "predictive: GPU-s per second of holding a whole pool, default 1" };
var retentionBudget = new Option<double?>("--retention-budget") { Description = "predictive: share of a worker's blocks its pins may hold, default 0.4" };
var retentionRenewals = new Option<int?>("--retention-renewals") { Description = "predictive: renewals of a pin whose TTL runs out before the session came back, by the conditional gap distribution; default 0 (none)" };
var retentionEvictionAge = new Option<string?>("--retention-eviction-age") { Description = "predictive: price pins by the worker's measured eviction age (Che's characteristic time of its LRU): off (default) | cover | shift" };
var retentionGuard = new Option<string?>("--retention-guard") { Description = "predictive: on (default) | off: the guard that stops HBM pins on a worker while its pin account says they are losing" };
var retentionHbmPins = new Option<string?>("--retention-hbm-pins") { Description = "predictive: off (default) | on: pin idle contexts in HBM on workers without a host tier" };
var programPriority = new Option<string?>("--program-priority") { Description = "off (default) | on | pinned: resumed agent turns (after a tool call; pinned: only while their pin holds) go ahead of fresh work in the gateway queue (within their tenant) and the engine's waiting queue" };
var requestsOut = new Option<bool>("--requests-out") { Description = "also write every request's outcome and TTFT breakdown (gateway queue, step in progress, engine queue, prefill steps) to <result>.requests.jsonl" };
var output = new Option<string?>("--out") { Description = "result.json path (.md and .svg next to it)" };
var parallel = new Option<int?>("--parallel") { Description = "runs at once, default: processor count" };
var strict = new Option<bool>("--strict") { Description = "stop at the first malformed trace line" };

var root = new RootCommand("Replays LLM traces through the gateway's routing/scheduling policies and the worker engine model in virtual time.");
foreach (var o in new Option[] { trace, format, scenarioFile, workers, profile, kvBlocks, hostKvBlocks, maxPinned, blockSize, maxBatch, longPrefill, maxRunning, maxWaiting, maxPending, kvHigh, capacity, maxInFlight, maxModelLen, weights, rates, mix, exclude, locality, lagBound, reserve, overShare, underShare, overdraw, exclusivePrefill, lowPrefill, serialPrefill, timeScale, maxRequests, maxSessions, sessionRate, mixTrace, mixFormat, mixRate, mixMax, tenants, salt, kvEvents, seed, seeds, routing, scheduling, retention, retentionCost, retentionBudget, retentionRenewals, retentionEvictionAge, retentionGuard, retentionHbmPins, programPriority, requestsOut, output, parallel, strict })
{
    root.Options.Add(o);
}

root.SetAction(parse =>
{
    try
    {
        var s = parse.GetValue(scenarioFile) is { } file ? Scenario.Load(file) : new Scenario();
        if (parse.GetValue(trace) is { } t) s.Trace = t;
        if (parse.GetValue(format) is { } f)
        {
            if (FormatOrError(f, "--format") is not { } tf) return 2;
            s.Format = tf;
        }

        if (parse.GetValue(workers) is { } w) s.Workers = w;
        if (parse.GetValue(profile) is { } p) s.Profile = p;
        if (parse.GetValue(kvBlocks) is { } kb) s.KvBlocks = kb;
        if (parse.GetValue(hostKvBlocks) is { } hkb) s.HostKvBlocks = hkb;
        if (parse.GetValue(blockSize) is { } bs) s.BlockSize = bs;
        if (parse.GetValue(maxPinned) is { } mp) s.MaxPinnedFraction = mp;
        if (parse.GetValue(maxBatch) is { } mb) s.MaxBatchTokens = mb;
        if (parse.GetValue(longPrefill) is { } lp) s.LongPrefillTokenThreshold = lp;
        if (parse.GetValue(maxRunning) is { } mr) s.MaxRunningSequences = mr;
        if (parse.GetValue(maxWaiting) is { } mw) s.MaxWaitingPerWorker = mw;
        if (parse.GetValue(maxModelLen) is { } ml) s.MaxModelLength = ml;
        if (parse.GetValue(maxPending) is { } mpp) s.MaxPendingPrefillTokens = mpp;
        if (parse.GetValue(kvHigh) is { } kvh) s.KvHighWatermark = kvh;
        if (parse.GetValue(capacity) is { } cap) s.Capacity = cap;
        if (parse.GetValue(maxInFlight) is { } mif) s.MaxInFlightPerWorker = mif;
        if (parse.GetValue(weights) is { } tw) s.TenantWeights = tw;
        if (parse.GetValue(rates) is { } tr) s.TenantRates = tr;
        if (parse.GetValue(mix) is { } tm) s.TenantMix = tm;
        if (parse.GetValue(exclude) is { } ex) s.ExcludeTenants = ex;
        if (parse.GetValue(lagBound) is { } lb) s.LagBound = lb;
        if (parse.GetValue(reserve) is { } rs) s.Reserve = rs;
        if (parse.GetValue(overShare) is { } osf) s.OverShareFactor = osf;
        if (parse.GetValue(underShare) is { } usp) s.UnderSharePriority = usp;
        if (!OnOff(parse.GetValue(overdraw), "--overdraw", out bool? od)) return 2;
        if (od is { } odOn) s.Overdraw = odOn;
        if (!OnOff(parse.GetValue(exclusivePrefill), "--exclusive-priority-prefill", out bool? epp)) return 2;
        if (epp is { } eppOn) s.ExclusivePriorityPrefill = eppOn;

        if (!OnOff(parse.GetValue(locality), "--locality", out bool? lo)) return 2;
        if (lo is { } loOn) s.Locality = loOn;

        if (parse.GetValue(lowPrefill) is { } lpp) s.LowPriorityPrefillTokens = lpp;
        if (!OnOff(parse.GetValue(serialPrefill), "--serial-urgent-prefill", out bool? sup)) return 2;
        if (sup is { } supOn) s.SerialUrgentPrefill = supOn;

        if (parse.GetValue(timeScale) is { } ts) s.TimeScale = ts;
        if (parse.GetValue(maxRequests) is { } mq) s.MaxRequests = mq;
        if (parse.GetValue(maxSessions) is { } ms) s.MaxSessions = ms;
        if (parse.GetValue(sessionRate) is { } sr) s.SessionRate = sr;
        if (parse.GetValue(tenants) is { } tn) s.Tenants = tn;
        if (parse.GetValue(mixTrace) is { } mt) s.MixTrace = mt;
        if (parse.GetValue(mixFormat) is { } mf)
        {
            if (FormatOrError(mf, "--mix-format") is not { } mtf) return 2;
            s.MixFormat = mtf;
        }

        if (parse.GetValue(mixRate) is { } mxr) s.MixRate = mxr;
        if (parse.GetValue(mixMax) is { } mxm) s.MixMaxRequests = mxm;
        if (parse.GetValue(salt) is { } cs) s.CacheSalt = cs;
        if (parse.GetValue(seed) is { } sd) s.Seed = sd;
        if (parse.GetValue(seeds) is { } sds)
        {
            try
            {
                s.Seeds = Scenario.ParseSeeds(sds);
            }
            catch (FormatException e)
            {
                Console.Error.WriteLine($"error: --seeds: {e.Message}");
                return 2;
            }
        }

        if (!OnOff(parse.GetValue(kvEvents), "--kv-events", out bool? ke)) return 2;
        if (ke is { } keOn) s.KvEvents = keOn;

        if (parse.GetValue(routing) is { } rt) s.Routing = Scenario.SplitList(rt);
        if (parse.GetValue(scheduling) is { } sc) s.Scheduling = Scenario.SplitList(sc);
        if (parse.GetValue(retention) is { } re) s.Retention = Scenario.SplitList(re);
        if (parse.GetValue(retentionCost) is { } rc) s.RetentionCostWeight = rc;
        if (parse.GetValue(retentionBudget) is { } rb) s.RetentionPinBudget = rb;
        if (parse.GetValue(retentionRenewals) is { } rr) s.RetentionRenewals = rr;
        if (parse.GetValue(retentionEvictionAge) is { } rea) s.RetentionEvictionAge = rea;
        if (parse.GetValue(retentionGuard) is { } rg) s.RetentionGuard = rg;
        if (parse.GetValue(retentionHbmPins) is { } rh) s.RetentionHbmPins = rh;

        if (parse.GetValue(programPriority) is { } pp) s.ProgramPriority = pp;

        if (parse.GetValue(output) is { } o) s.Out = o;
        if (parse.GetValue(parallel) is { } pa) s.Parallelism = pa;
        if (parse.GetValue(strict)) s.Strict = true;
        if (parse.GetValue(requestsOut)) s.RequestsOut = true;

        var errors = s.Validate();
        if (errors.Count > 0)
        {
            foreach (var e in errors)
            {
                Console.Error.WriteLine("error: " + e);
            }

            return 2;
        }

        SimulatorApp.Run(s, Console.Error, "simulator " + string.Join(' ', args));
        Console.Error.WriteLine($"wrote {s.Out} (+ .md, .svg)");
        return 0;
    }
    catch (Exception e) when (e is TraceFormatException or FormatException or IOException or System.Text.Json.JsonException or ArgumentException)
    {
        Console.Error.WriteLine("error: " + e.Message);
        return 1;
    }
});

var convert = new Command("convert", "Converts a trace to canonical jsonl.");
var cTrace = new Option<string>("--trace") { Description = "input trace file or folder", Required = true };
var cFormat = new Option<string>("--format") { Description = "mooncake | weka | azure | canonical", Required = true };
var cOut = new Option<string>("--out") { Description = "output .jsonl", Required = true };
var cTenants = new Option<int?>("--tenants") { Description = "spread a tenant-less trace over N synthetic tenants" };
var cStrict = new Option<bool>("--strict") { Description = "stop at the first malformed line" };
foreach (var o in new Option[] { cTrace, cFormat, cOut, cTenants, cStrict })
{
    convert.Options.Add(o);
}

convert.SetAction(parse =>
{
    try
    {
        if (FormatOrError(parse.GetValue(cFormat), "--format") is not { } tf) return 2;

        var s = new Scenario { Trace = parse.GetValue(cTrace)!, Format = tf, Strict = parse.GetValue(cStrict) };
        var load = SimulatorApp.LoadTrace(s, Console.Error);
        int n = parse.GetValue(cTenants) ?? 0;
        var requests = Converter.AssignTenants(load.Requests, n);
        CanonicalFormat.Write(requests, parse.GetValue(cOut)!);
        Console.Error.WriteLine($"wrote {requests.Count} requests to {parse.GetValue(cOut)}");
        return 0;
    }
    catch (Exception e) when (e is TraceFormatException or FormatException or IOException or System.Text.Json.JsonException)
    {
        Console.Error.WriteLine("error: " + e.Message);
        return 1;
    }
});
root.Subcommands.Add(convert);

var compare = new Command("compare", "Runs a comparison suite (traces x load levels x routing policies x seeds) and writes the tables and charts the docs quote.");
var kSuite = new Option<string>("--suite") { Description = "suite file (JSON), e.g. bench/compare/routing-suite.json", Required = true };
var kTraces = new Option<string?>("--traces") { Description = "trace folder (overrides the suite's \"traces\")" };
var kOut = new Option<string?>("--out") { Description = "report folder (overrides the suite's \"out\")" };
var kRaw = new Option<string?>("--raw") { Description = "folder for each cell's result.json/.md/.svg, default artifacts/compare" };
var kParallel = new Option<int?>("--parallel") { Description = "runs at once, default: processor count" };
foreach (var o in new Option[] { kSuite, kTraces, kOut, kRaw, kParallel })
{
    compare.Options.Add(o);
}

compare.SetAction(parse =>
{
    try
    {
        var suite = Simulator.Compare.Suite.Load(parse.GetValue(kSuite)!, parse.GetValue(kTraces), parse.GetValue(kOut));
        int par = parse.GetValue(kParallel) ?? Environment.ProcessorCount;
        if (par < 1)
        {
            Console.Error.WriteLine("error: --parallel must be >= 1");
            return 2;
        }

        Simulator.Compare.CompareRunner.Run(suite, parse.GetValue(kRaw) ?? "artifacts/compare", par, Console.Error, "simulator " + string.Join(' ', args));
        return 0;
    }
    catch (Exception e) when (e is TraceFormatException or FormatException or IOException or System.Text.Json.JsonException or ArgumentException)
    {
        Console.Error.WriteLine("error: " + e.Message);
        return 1;
    }
});
root.Subcommands.Add(compare);

return root.Parse(args).Invoke();

// A trace format named on the command line, or null after printing which names are known.
// An on|off flag: null when absent; false (with the error written) for any other value.
static bool OnOff(string? value, string flag, out bool? on)
{
    on = value switch { null => null, "on" => true, "off" => false, _ => null };
    if (value is null or "on" or "off")
    {
        return true;
    }

    Console.Error.WriteLine($"error: {flag} must be on or off");
    return false;
}

static TraceFormat? FormatOrError(string? name, string flag)
{
    if (TraceReader.TryParseFormat(name, out var format))
    {
        return format;
    }

    Console.Error.WriteLine($"error: unknown {flag} '{name}' (mooncake, weka, azure, canonical)");
    return null;
}
