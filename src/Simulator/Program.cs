using System.CommandLine;
using System.Globalization;
using Cli;
using Simulator;
using Simulator.Traces;

// Simulator CLI: replays a trace through the gateway's policies and the worker's engine model in virtual time.
// See docs/simulator.md for every flag and the model. Flags override a --scenario file; every error is reported at once.
var d = new Scenario(); // the defaults --help shows
var trace = CliOptions.OptionalText("--trace", "trace file, or a folder of session files (weka)", "required (or the scenario file's)");
var format = CliOptions.OptionalText("--format", "mooncake | weka | azure | canonical", d.Format.ToString().ToLowerInvariant());
var scenarioFile = CliOptions.OptionalText("--scenario", "JSON scenario file (flags override it)", "none");
var workers = CliOptions.OptionalValue<int>("--workers", "workers (one engine each)", Text(d.Workers));
var profile = CliOptions.OptionalText("--profile", "engine profile", d.Profile);
var kvBlocks = CliOptions.OptionalValue<int>("--kv-blocks", "KV blocks per worker (0: profile default)", "0 = the profile's");
var hostKvBlocks = CliOptions.OptionalValue<int>("--host-kv-blocks", "host-memory KV tier per worker in blocks, for every run of the invocation (0: none; -1: 2x the HBM pool, HiCache's ratio)", Text(d.HostKvBlocks));
var maxPinned = CliOptions.OptionalValue<double>("--max-pinned-fraction", "largest share of an engine's KV blocks pins may hold (as the worker)", Text(d.MaxPinnedFraction));
var blockSize = CliOptions.OptionalValue<int>("--block-size", "engine block size in tokens", Text(d.BlockSize));
var maxBatch = CliOptions.OptionalValue<int>("--max-batch-tokens", "per-step token budget", Text(d.MaxBatchTokens));
var longPrefill = CliOptions.OptionalValue<int>("--long-prefill-threshold", "engine caps a prefill chunk at N tokens while others want the step (vLLM long_prefill_token_threshold)", "0 = off");
var maxRunning = CliOptions.OptionalValue<int>("--max-running", "running sequences per engine", Text(d.MaxRunningSequences));
var maxWaiting = CliOptions.OptionalValue<int>("--max-waiting", "capacity: requests waiting in an engine before the gateway holds more", Text(d.MaxWaitingPerWorker));
var maxPending = CliOptions.OptionalValue<int>("--max-pending-prefill", "capacity: prompt tokens sent to a worker and not yet prefilled before the gateway holds more", "0 = off");
var kvHigh = CliOptions.OptionalValue<double>("--kv-high-watermark", "capacity: a worker whose KV blocks in use reach this fraction takes no new request", "0 = off");
var capacity = CliOptions.OptionalText("--capacity", "dispatch capacity rule: engine (engine queue below --max-waiting) | slots (the gateway's: --max-in-flight slots per worker, only the used ones while saturated)", d.Capacity);
var maxInFlight = CliOptions.OptionalValue<int>("--max-in-flight", "capacity slots: requests in flight per worker (the gateway's MaxInFlightPerWorker)", Text(d.MaxInFlightPerWorker));
var maxModelLen = CliOptions.OptionalValue<int>("--max-model-length", "longest prompt+output an engine accepts", Text(d.MaxModelLength));
var weights = CliOptions.OptionalText("--tenant-weights", "\"org-a=2,org-a/k1=1,org-b=1\"", "all 1");
var rates = CliOptions.OptionalText("--tenant-rates", "arrival-rate multipliers, \"org-b=10\"", "all 1");
var mix = CliOptions.OptionalText("--tenant-mix", "root sessions per synthetic tenant, \"tenant-0=10\"", "all 1");
var exclude = CliOptions.OptionalText("--exclude-tenants", "drop these tenants' requests after selection, \"tenant-0\"", "none");
var locality = CliOptions.OptionalText("--locality", "on | off: hfair's locality pick on dispatch", OnOffText(d.Locality));
var pickedWorker = CliOptions.OptionalText("--picked-worker", "on | off: a request hfair's locality pick chose for a worker goes there (off: routing places it)", OnOffText(d.PickedWorker));
var lagBound = CliOptions.OptionalValue<double>("--lag-bound", "hfair locality lag bound in cost units", Text(d.LagBound));
var reserve = CliOptions.OptionalValue<int>("--reserve", "hfair: free dispatch slots held back for tenants not over their in-flight share (0: off)", Text(d.Reserve));
var overShare = CliOptions.OptionalValue<double>("--over-share-factor", "hfair: a tenant holding this many times its weighted share of the in-flight requests may not take a reserved slot", Text(d.OverShareFactor));
var underShare = CliOptions.OptionalValue<int>("--under-share-priority", "hfair: engine priority of a request dispatched within its tenant's share (0: no hint)", Text(d.UnderSharePriority));
var overdraw = CliOptions.OptionalText("--overdraw", "on | off (off: as one gateway): with no slot free and none lent, an under-share request is released beyond capacity", OnOffText(d.Overdraw));
var exclusivePrefill = CliOptions.OptionalText("--exclusive-priority-prefill", "on | off: an engine step's prefill tokens go only to its highest prefilling priority", OnOffText(d.ExclusivePriorityPrefill));
var lowPrefill = CliOptions.OptionalValue<int>("--low-priority-prefill", "engine: at most N prefill tokens per step for lower priorities while urgent work was submitted in the last 10 s (0: off)", Text(d.LowPriorityPrefillTokens));
var serialPrefill = CliOptions.OptionalText("--serial-urgent-prefill", "on | off: an engine step prefills at most one urgent (priority above 0) prompt", OnOffText(d.SerialUrgentPrefill));
var timeScale = CliOptions.OptionalValue<double>("--time-scale", "open-loop arrivals X times faster (start / X)", Text(d.TimeScale));
var maxRequests = CliOptions.OptionalValue<int>("--max-requests", "keep the first N requests", "all");
var maxSessions = CliOptions.OptionalValue<int>("--max-sessions", "keep the first N root sessions", "all");
var sessionRate = CliOptions.OptionalValue<double>("--session-rate", "root sessions start as a Poisson process of R/s", "the trace's start times");
var mixTrace = CliOptions.OptionalText("--mix-trace", "second trace replayed as non-agent one-shot traffic (tenant non-agent)", "none");
var mixFormat = CliOptions.OptionalText("--mix-format", "format of --mix-trace", d.MixFormat.ToString().ToLowerInvariant());
var mixRate = CliOptions.OptionalValue<double>("--mix-rate", "non-agent requests arrive as a Poisson process of R/s (0: recorded times)", "0 = recorded times");
var mixMax = CliOptions.OptionalValue<int>("--mix-max-requests", "keep the first N non-agent requests", "all");
var tenants = CliOptions.OptionalValue<int>("--tenants", "spread a tenant-less trace over N synthetic tenants", "the trace's tenants");
var salt = CliOptions.OptionalText("--cache-salt", "tenant | org | none", d.CacheSalt);
var kvEvents = CliOptions.OptionalText("--kv-events", "on | off: relay engine KV events to kv-aware's precise index", OnOffText(d.KvEvents));
var seed = CliOptions.OptionalValue<int>("--seed", "random seed", Text(d.Seed));
var seeds = CliOptions.OptionalText("--seeds", "repeat every combination with these seeds (\"1-5\" or \"1,2,3\") and add aggregates across them to the reports", "--seed only");
var routing = CliOptions.OptionalText("--routing", "routing policies, comma separated", string.Join(",", d.Routing));
var scheduling = CliOptions.OptionalText("--scheduling", "scheduling policies, comma separated", string.Join(",", d.Scheduling));
var retention = CliOptions.OptionalText("--retention", "retention policies, comma separated: off, fixed:SECONDS, predictive, oracle[:SECONDS] (clairvoyant reference)", string.Join(",", d.Retention));
var retentionCost = CliOptions.OptionalValue<double>("--retention-cost", "predictive: GPU-s per second of holding a whole pool", Text(d.RetentionCostWeight));
var retentionBudget = CliOptions.OptionalValue<double>("--retention-budget", "predictive: share of a worker's blocks its pins may hold", Text(d.RetentionPinBudget));
var retentionRenewals = CliOptions.OptionalValue<int>("--retention-renewals", "predictive: renewals of a pin whose TTL runs out before the session came back, by the conditional gap distribution", Text(d.RetentionRenewals));
var retentionEvictionAge = CliOptions.OptionalText("--retention-eviction-age", "predictive: price pins by the worker's measured eviction age (Che's characteristic time of its LRU): off | cover | shift", d.RetentionEvictionAge);
var retentionGuard = CliOptions.OptionalText("--retention-guard", "predictive: on | off: the guard that stops HBM pins on a worker while its pin account says they are losing", d.RetentionGuard);
var retentionHbmPins = CliOptions.OptionalText("--retention-hbm-pins", "predictive: off | on: pin idle contexts in HBM on workers without a host tier", d.RetentionHbmPins);
var programPriority = CliOptions.OptionalText("--program-priority", "off | on | pinned: resumed agent turns (after a tool call; pinned: only while their pin holds) go ahead of fresh work in the gateway queue (within their tenant) and the engine's waiting queue", d.ProgramPriority);
var requestsOut = CliOptions.Create("--requests-out", "also write every request's outcome and TTFT breakdown (gateway queue, step in progress, engine queue, prefill steps) to <result>.requests.jsonl", false);
var output = CliOptions.OptionalText("--out", "result.json path (.md and .svg next to it)", d.Out);
var parallel = CliOptions.OptionalValue<int>("--parallel", "runs at once", "the processor count");
var strict = CliOptions.Create("--strict", "stop at the first malformed trace line", false);

var root = new RootCommand("Replays LLM traces through the gateway's routing/scheduling policies and the worker engine model in virtual time.");
root.AddOptions(trace, format, scenarioFile, workers, profile, kvBlocks, hostKvBlocks, maxPinned, blockSize, maxBatch, longPrefill, maxRunning, maxWaiting, maxPending, kvHigh, capacity, maxInFlight, maxModelLen, weights, rates, mix, exclude, locality, pickedWorker, lagBound, reserve, overShare, underShare, overdraw, exclusivePrefill, lowPrefill, serialPrefill, timeScale, maxRequests, maxSessions, sessionRate, mixTrace, mixFormat, mixRate, mixMax, tenants, salt, kvEvents, seed, seeds, routing, scheduling, retention, retentionCost, retentionBudget, retentionRenewals, retentionEvictionAge, retentionGuard, retentionHbmPins, programPriority, requestsOut, output, parallel, strict);

var app = new CliApp(root);
app.Handle(root, input =>
{
    var s = new Scenario();
    if (input.GetGiven(scenarioFile) is { } file)
    {
        try
        {
            s = Scenario.Load(file);
        }
        catch (Exception e) when (e is FormatException or IOException or System.Text.Json.JsonException or ArgumentException)
        {
            input.Error($"--scenario {file}: {e.Message}");
        }
    }

    if (input.GetGiven(trace) is { } t) s.Trace = t;
    if (FormatOf(input, format) is { } tf) s.Format = tf;

    if (input.GetGiven(workers) is { } w) s.Workers = w;
    if (input.GetGiven(profile) is { } p) s.Profile = p;
    if (input.GetGiven(kvBlocks) is { } kb) s.KvBlocks = kb;
    if (input.GetGiven(hostKvBlocks) is { } hkb) s.HostKvBlocks = hkb;
    if (input.GetGiven(blockSize) is { } bs) s.BlockSize = bs;
    if (input.GetGiven(maxPinned) is { } mp) s.MaxPinnedFraction = mp;
    if (input.GetGiven(maxBatch) is { } mb) s.MaxBatchTokens = mb;
    if (input.GetGiven(longPrefill) is { } lp) s.LongPrefillTokenThreshold = lp;
    if (input.GetGiven(maxRunning) is { } mr) s.MaxRunningSequences = mr;
    if (input.GetGiven(maxWaiting) is { } mw) s.MaxWaitingPerWorker = mw;
    if (input.GetGiven(maxModelLen) is { } ml) s.MaxModelLength = ml;
    if (input.GetGiven(maxPending) is { } mpp) s.MaxPendingPrefillTokens = mpp;
    if (input.GetGiven(kvHigh) is { } kvh) s.KvHighWatermark = kvh;
    if (input.GetGiven(capacity) is { } cap) s.Capacity = cap;
    if (input.GetGiven(maxInFlight) is { } mif) s.MaxInFlightPerWorker = mif;
    if (input.GetGiven(weights) is { } tw) s.TenantWeights = tw;
    if (input.GetGiven(rates) is { } tr) s.TenantRates = tr;
    if (input.GetGiven(mix) is { } tm) s.TenantMix = tm;
    if (input.GetGiven(exclude) is { } ex) s.ExcludeTenants = ex;
    if (input.GetGiven(lagBound) is { } lb) s.LagBound = lb;
    if (input.GetGiven(reserve) is { } rs) s.Reserve = rs;
    if (input.GetGiven(overShare) is { } osf) s.OverShareFactor = osf;
    if (input.GetGiven(underShare) is { } usp) s.UnderSharePriority = usp;
    if (input.OnOff(overdraw) is { } odOn) s.Overdraw = odOn;
    if (input.OnOff(exclusivePrefill) is { } eppOn) s.ExclusivePriorityPrefill = eppOn;

    if (input.OnOff(locality) is { } loOn) s.Locality = loOn;
    if (input.OnOff(pickedWorker) is { } pwOn) s.PickedWorker = pwOn;

    if (input.GetGiven(lowPrefill) is { } lpp) s.LowPriorityPrefillTokens = lpp;
    if (input.OnOff(serialPrefill) is { } supOn) s.SerialUrgentPrefill = supOn;

    if (input.GetGiven(timeScale) is { } ts) s.TimeScale = ts;
    if (input.GetGiven(maxRequests) is { } mq) s.MaxRequests = mq;
    if (input.GetGiven(maxSessions) is { } ms) s.MaxSessions = ms;
    if (input.GetGiven(sessionRate) is { } sr) s.SessionRate = sr;
    if (input.GetGiven(tenants) is { } tn) s.Tenants = tn;
    if (input.GetGiven(mixTrace) is { } mt) s.MixTrace = mt;
    if (FormatOf(input, mixFormat) is { } mtf) s.MixFormat = mtf;

    if (input.GetGiven(mixRate) is { } mxr) s.MixRate = mxr;
    if (input.GetGiven(mixMax) is { } mxm) s.MixMaxRequests = mxm;
    if (input.GetGiven(salt) is { } cs) s.CacheSalt = cs;
    if (input.GetGiven(seed) is { } sd) s.Seed = sd;
    if (input.GetGiven(seeds) is { } sds)
    {
        try
        {
            s.Seeds = Scenario.ParseSeeds(sds);
        }
        catch (FormatException e)
        {
            input.Error($"--seeds: {e.Message}");
        }
    }

    if (input.OnOff(kvEvents) is { } keOn) s.KvEvents = keOn;

    if (input.GetGiven(routing) is { } rt) s.Routing = Scenario.SplitList(rt);
    if (input.GetGiven(scheduling) is { } sc) s.Scheduling = Scenario.SplitList(sc);
    if (input.GetGiven(retention) is { } re) s.Retention = Scenario.SplitList(re);
    if (input.GetGiven(retentionCost) is { } rc) s.RetentionCostWeight = rc;
    if (input.GetGiven(retentionBudget) is { } rb) s.RetentionPinBudget = rb;
    if (input.GetGiven(retentionRenewals) is { } rr) s.RetentionRenewals = rr;
    if (input.GetGiven(retentionEvictionAge) is { } rea) s.RetentionEvictionAge = rea;
    if (input.GetGiven(retentionGuard) is { } rg) s.RetentionGuard = rg;
    if (input.GetGiven(retentionHbmPins) is { } rh) s.RetentionHbmPins = rh;

    if (input.GetGiven(programPriority) is { } pp) s.ProgramPriority = pp;

    if (input.GetGiven(output) is { } o) s.Out = o;
    if (input.GetGiven(parallel) is { } pa) s.Parallelism = pa;
    if (input.Get(strict)) s.Strict = true;
    if (input.Get(requestsOut)) s.RequestsOut = true;

    foreach (var e in s.Validate())
    {
        input.Error(e);
    }

    return s;
},
s =>
{
    try
    {
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
var cTrace = CliOptions.OptionalText("--trace", "input trace file or folder (required)", "none");
var cFormat = CliOptions.OptionalText("--format", "mooncake | weka | azure | canonical (required)", "none");
var cOut = CliOptions.OptionalText("--out", "output .jsonl (required)", "none");
var cTenants = CliOptions.OptionalValue<int>("--tenants", "spread a tenant-less trace over N synthetic tenants", "the trace's tenants");
var cStrict = CliOptions.Create("--strict", "stop at the first malformed line", false);
convert.AddOptions(cTrace, cFormat, cOut, cTenants, cStrict);
root.Subcommands.Add(convert);
app.Handle(convert, input =>
{
    string? path = input.GetGiven(cTrace), outPath = input.GetGiven(cOut);
    var tf = FormatOf(input, cFormat);
    foreach (var (value, flag) in new[] { (path, "--trace"), (input.GetGiven(cFormat), "--format"), (outPath, "--out") })
    {
        if (string.IsNullOrEmpty(value))
        {
            input.Error($"{flag} is required");
        }
    }

    int n = input.GetGiven(cTenants) ?? 0;
    if (n < 0)
    {
        input.Error($"--tenants must be >= 0, got {n}");
    }

    return (Scenario: new Scenario { Trace = path ?? "", Format = tf ?? TraceFormat.Canonical, Strict = input.Get(cStrict) }, Out: outPath ?? "", Tenants: n);
},
c =>
{
    try
    {
        var load = SimulatorApp.LoadTrace(c.Scenario, Console.Error);
        var requests = Converter.AssignTenants(load.Requests, c.Tenants);
        CanonicalFormat.Write(requests, c.Out);
        Console.Error.WriteLine($"wrote {requests.Count} requests to {c.Out}");
        return 0;
    }
    catch (Exception e) when (e is TraceFormatException or FormatException or IOException or System.Text.Json.JsonException)
    {
        Console.Error.WriteLine("error: " + e.Message);
        return 1;
    }
});

var compare = new Command("compare", "Runs a comparison suite (traces x load levels x routing policies x seeds) and writes the tables and charts the docs quote.");
var kSuite = CliOptions.OptionalText("--suite", "suite file (JSON), e.g. bench/compare/routing-suite.json (required)", "none");
var kTraces = CliOptions.OptionalText("--traces", "trace folder (overrides the suite's \"traces\")", "the suite's");
var kOut = CliOptions.OptionalText("--out", "report folder (overrides the suite's \"out\")", "the suite's");
var kRaw = CliOptions.Create("--raw", "folder for each cell's result.json/.md/.svg", "artifacts/compare");
var kParallel = CliOptions.Create("--parallel", "runs at once", Environment.ProcessorCount);
compare.AddOptions(kSuite, kTraces, kOut, kRaw, kParallel);
root.Subcommands.Add(compare);
app.Handle(compare, input =>
{
    int par = input.InRange(kParallel, 1, 4096);
    string? suitePath = input.GetGiven(kSuite);
    Simulator.Compare.Suite? suite = null;
    if (string.IsNullOrEmpty(suitePath))
    {
        input.Error("--suite is required");
    }
    else
    {
        try
        {
            suite = Simulator.Compare.Suite.Load(suitePath, input.GetGiven(kTraces), input.GetGiven(kOut));
        }
        catch (Exception e) when (e is FormatException or IOException or System.Text.Json.JsonException or ArgumentException)
        {
            input.Error($"--suite {suitePath}: {e.Message}");
        }
    }

    return (Suite: suite!, Raw: input.Get(kRaw), Parallel: par);
},
k =>
{
    try
    {
        Simulator.Compare.CompareRunner.Run(k.Suite, k.Raw, k.Parallel, Console.Error, "simulator " + string.Join(' ', args));
        return 0;
    }
    catch (Exception e) when (e is TraceFormatException or FormatException or IOException or System.Text.Json.JsonException or ArgumentException)
    {
        Console.Error.WriteLine("error: " + e.Message);
        return 1;
    }
});

return app.Invoke(args);

static string Text(IFormattable value) => value.ToString(null, CultureInfo.InvariantCulture);

static string OnOffText(bool on) => on ? "on" : "off";

// A trace format named on the command line (null when absent, or unknown: then an error).
static TraceFormat? FormatOf(CliInput input, Option<string?> option)
{
    string? name = input.GetGiven(option);
    if (name is null)
    {
        return null;
    }

    if (TraceReader.TryParseFormat(name, out var format))
    {
        return format;
    }

    input.Error($"unknown {option.Name} '{name}' (mooncake, weka, azure, canonical)");
    return null;
}
