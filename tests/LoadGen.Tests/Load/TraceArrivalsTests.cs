using LoadGen.Client;
using LoadGen.Load;
using LoadGen.Metrics;

namespace LoadGen.Tests.Load;

public sealed class TraceArrivalsTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("arrivals-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void Load_MooncakeJsonl_OffsetsFromFirstDividedBySpeedupWithinWindow()
    {
        string path = Path.Combine(_dir, "t.jsonl");
        File.WriteAllLines(path, ["{\"timestamp\": 1000, \"input_length\": 5}", "{\"timestamp\": 3000}", "{\"timestamp\": 2000}", "{\"timestamp\": 61000}"]);
        var offsets = TraceArrivals.Load(path, speedup: 2, window: TimeSpan.FromSeconds(10));
        Assert.Equal([TimeSpan.Zero, TimeSpan.FromSeconds(0.5), TimeSpan.FromSeconds(1)], offsets);
    }

    [Fact]
    public void Load_AzureCsv_ParsesWallClockTimestamps()
    {
        string path = Path.Combine(_dir, "t.csv");
        File.WriteAllLines(path, ["TIMESTAMP,ContextTokens,GeneratedTokens", "2023-11-16 18:15:46.5000000,374,44", "2023-11-16 18:15:48.0000000,396,109"]);
        var offsets = TraceArrivals.Load(path, speedup: 1, window: TimeSpan.FromMinutes(1));
        Assert.Equal([TimeSpan.Zero, TimeSpan.FromSeconds(1.5)], offsets);
    }

    [Fact]
    public void Load_NotJson_ArgumentException()
    {
        string path = Path.Combine(_dir, "bad.jsonl");
        File.WriteAllText(path, "{not json\n");
        Assert.Throws<ArgumentException>(() => TraceArrivals.Load(path, 1, TimeSpan.FromMinutes(1)));
    }

    [Theory]
    [InlineData(10, 40)]
    [InlineData(2.5, 10)]
    [InlineData(0.5, 2)]
    [InlineData(1, 4)]
    public void Scale_Factor_ThatManyArrivalsSortedWithinTheTracesPeriod(double factor, int expected)
    {
        TimeSpan[] offsets = [TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1.5), TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(4)];
        var scaled = TraceArrivals.Scale(offsets, factor);
        Assert.Equal(expected, scaled.Count);
        Assert.Equal(scaled.Order(), scaled);
        Assert.All(scaled, t => Assert.InRange(t, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(5))); // span 3 s + mean gap 1 s
        if (factor >= 1)
        {
            Assert.All(offsets, t => Assert.Contains(t, scaled)); // the trace itself is copy 0
        }
    }

    [Fact]
    public void DeriveSeed_FixedFunctionOfRunSeed_SameInEveryProcess()
    {
        // Golden values (SplitMix64 mixing, computed independently): a per-process randomised hash here would make two
        // runs with the same --seed send different arrivals and prompts.
        Assert.Equal(1012610570, Runner.DeriveSeed(42, 0, -1));
        Assert.Equal(-1175938310, Runner.DeriveSeed(42, 0, 0));
        Assert.Equal(706960096, Runner.DeriveSeed(42, 1, 7));
        Assert.Equal(-1490977411, Runner.DeriveSeed(43, 0, 0));
    }

    [Fact]
    public void NoisyNeighbour_ArrivalsFromTrace_NoisyTenantReplaysTenTimesTheArrivals()
    {
        var arrivals = Enumerable.Range(0, 20).Select(i => TimeSpan.FromMilliseconds(i * i * 10)).ToList();
        var plan = LoadGen.Scenarios.ScenarioCatalog.Build("noisy-neighbour", new LoadGen.Scenarios.ScenarioOptions
        {
            Tenants = [new Tenant("noisy", null), new Tenant("quiet-1", null), new Tenant("quiet-2", null)],
            Arrivals = arrivals,
        });
        int Count(int flow) => Assert.IsType<LoadSimulation.InjectAt>(Assert.Single(plan.Flows[flow].Simulations)).Offsets.Count;
        Assert.Equal(200, Count(0));
        Assert.Equal(20, Count(1));
        Assert.Equal(20, Count(2));
    }

    [Fact]
    public async Task RunAsync_InjectAt_StartsRequestsAtTheRecordedOffsets()
    {
        await using var server = await FakeOpenAiServer.StartAsync();
        using var http = SseChatClient.CreateHttpClient();
        var client = new SseChatClient(http, server.BaseAddress, "m", ClientTimeouts.Default);
        var flow = new Flow
        {
            Name = "replay",
            Simulations = [new LoadSimulation.InjectAt([TimeSpan.Zero, TimeSpan.FromMilliseconds(400), TimeSpan.FromMilliseconds(1200)])],
            NewSession = (i, _) => new SingleRequestSession(new ChatRequest { Tenant = new Tenant("t", null), Messages = [new ChatMessage("user", "x")] }),
        };
        var run = await new Runner(client, new MetricsCollector(), new RunOptions { Duration = TimeSpan.FromSeconds(10) }).RunAsync([flow], CancellationToken.None);
        var starts = run.Results.Select(r => r.StartSeconds).Order().ToArray();
        Assert.Equal(3, starts.Length);
        // A request never starts before its recorded offset (late starts on a busy machine are allowed): an injector
        // that fired everything at once, or ignored the offsets, would start request 2 long before 1.2 s.
        double[] offsets = [0, 0.4, 1.2];
        for (int i = 0; i < 3; i++)
        {
            Assert.True(starts[i] >= offsets[i] - 0.05, $"request {i} started at {starts[i]:F3}s, before its offset {offsets[i]}s");
        }

        Assert.Equal(3, run.ArrivalLagMs!.Count);
        Assert.All(run.ArrivalLagMs, l => Assert.True(l >= 0));
    }

    [Fact]
    public async Task RunAsync_ArrivalLoopHeldUp_LateArrivalsShowInArrivalLag()
    {
        // Building each session blocks the arrival loop for 300 ms (as a starved machine would): arrivals scheduled
        // 50 ms apart start ~300 ms apart, and the run says so instead of silently offering less load.
        await using var server = await FakeOpenAiServer.StartAsync();
        using var http = SseChatClient.CreateHttpClient();
        var client = new SseChatClient(http, server.BaseAddress, "m", ClientTimeouts.Default);
        var flow = new Flow
        {
            Name = "held-up",
            Simulations = [new LoadSimulation.InjectAt([TimeSpan.Zero, TimeSpan.FromMilliseconds(50), TimeSpan.FromMilliseconds(100)])],
            NewSession = (i, _) =>
            {
                Thread.Sleep(300);
                return new SingleRequestSession(new ChatRequest { Tenant = new Tenant("t", null), Messages = [new ChatMessage("user", "x")] });
            },
        };
        var run = await new Runner(client, new MetricsCollector(), new RunOptions { Duration = TimeSpan.FromSeconds(10) }).RunAsync([flow], CancellationToken.None);
        Assert.Equal(3, run.ArrivalLagMs!.Count);
        Assert.True(run.ArrivalLagMs.Max() >= 400, $"lags {string.Join(", ", run.ArrivalLagMs)} ms"); // third: ~600 - 100
        var report = LoadGen.Reporting.RunReport.Build("s", "d", "t", "m", DateTimeOffset.UtcNow, new SortedDictionary<string, string>(), run,
            new Dictionary<string, long> { ["t"] = 3 });
        Assert.True(report.ArrivalLagMs!.Max >= 400);

    }
}
