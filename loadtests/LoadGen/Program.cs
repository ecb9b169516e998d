using LoadGen;
using LoadGen.Client;
using LoadGen.Load;
using LoadGen.Metrics;
using LoadGen.Reporting;
using LoadGen.Scenarios;

// Load generator for the gateway and its workers (issue 9): see docs/benchmarks.md.
var app = CommandLine.CreateApp((cl, plan) => RunAsync(cl, plan).GetAwaiter().GetResult());
return args.Length == 0 ? app.Invoke(["--help"]) + 1 : app.Invoke(args); // no arguments: the help, exit 1

static async Task<int> RunAsync(CommandLine cl, ScenarioPlan plan)
{
    using var cts = new CancellationTokenSource();
    Console.CancelKeyPress += (_, e) =>
    {
        e.Cancel = true; // first Ctrl+C: stop issuing, drain, still write the report
        cts.Cancel();
    };

    using var http = SseChatClient.CreateHttpClient();
    string model = cl.Model ?? await ModelDiscovery.FirstModelAsync(http, cl.Target, cl.ScenarioOptions.Tenants[0].ApiKey, cts.Token) ?? "default";
    var client = new SseChatClient(http, cl.Target, model, cl.Timeouts);
    var metrics = new MetricsCollector();
    var recorder = cl.RecordWorkload is null ? null : new WorkloadRecorder();
    var runner = new Runner(client, metrics, new RunOptions
    {
        Recorder = recorder,
        Duration = cl.ScenarioOptions.Duration,
        MaxRequests = cl.MaxRequests,
        Seed = cl.Seed,
        Drain = cl.Timeouts.Total + TimeSpan.FromSeconds(10),
        Actions = plan.Actions,
    });

    if (cl.Warmup > 0)
    {
        // The first flow that sends anything (noisy-neighbour with --noisy-factor 0 keeps a silent first flow).
        var warmFlow = plan.Flows.FirstOrDefault(f => f.Simulations.Count > 0) ?? plan.Flows[0];
        var (ok, failed) = await Warmup.RunAsync(client, warmFlow, cl.Warmup, cts.Token);
        Console.WriteLine($"warm-up: {ok} ok, {failed} failed (not measured)");
    }

    var started = DateTimeOffset.UtcNow;
    Console.WriteLine($"scenario {plan.Name}: {plan.Description}");
    Console.WriteLine($"target {cl.Target} model {model}, {cl.ScenarioOptions.Tenants.Count} tenant(s), duration {cl.ScenarioOptions.Duration.TotalSeconds} s" +
        (cl.MaxRequests > 0 ? $", at most {cl.MaxRequests} requests" : ""));
    bool interactive = !cl.Plain && LiveProgress.IsInteractive;
    var run = await LiveProgress.ShowAsync(runner.RunAsync(plan.Flows, cts.Token), metrics, () => runner.Elapsed, plan.Name, interactive, cl.ProgressInterval, Console.Out);

    var issuedByTenant = metrics.Live.ToDictionary(kv => kv.Key, kv => kv.Value.Issued, StringComparer.Ordinal);
    var report = RunReport.Build(plan.Name, plan.Description, cl.Target.ToString(), model, started, cl.Settings, run, issuedByTenant);
    var paths = ReportWriter.WriteAll(report, run.Results, cl.Out);
    var o = report.Overall;
    Console.WriteLine($"done in {report.ElapsedSeconds:0.0} s: {o.Requests} requests, ok {o.Ok}, error {o.Error}, no answer {o.NoAnswer}; " +
        $"TTFT p50 {o.TtftMs.P50:0.0} ms p99 {o.TtftMs.P99:0.0} ms; E2E p50 {o.E2eMs.P50:0.0} ms; {o.OutputTokenThroughput:0.0} output tok/s");
    if (report.ArrivalLagMs is { } lag && lag.P99 > 50)
    {
        Console.WriteLine($"warning: open-loop arrivals started late (p99 {lag.P99:0} ms, max {lag.Max:0} ms): this machine could not keep the schedule; the offered load was lower than asked");
    }

    foreach (var (reason, n) in o.ErrorReasons)
    {
        Console.WriteLine($"  error {reason}: {n}");
    }

    Console.WriteLine("report: " + string.Join(", ", paths));
    if (recorder is not null)
    {
        recorder.Write(cl.RecordWorkload!);
        Console.WriteLine($"workload: {recorder.Count} requests -> {cl.RecordWorkload} (simulator --format canonical)");
    }

    return o.NoAnswer == 0 ? 0 : 2;
}
