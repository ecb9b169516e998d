using LoadGen.Client;
using LoadGen.Load;
using LoadGen.Metrics;
using LoadGen.Scenarios;

namespace LoadGen.Tests.Load;

public sealed class RunnerTests : IAsyncLifetime
{
    private FakeOpenAiServer _server = null!;
    private HttpClient _http = null!;

    public async Task InitializeAsync()
    {
        _server = await FakeOpenAiServer.StartAsync();
        _http = SseChatClient.CreateHttpClient();
    }

    public async Task DisposeAsync()
    {
        _http.Dispose();
        await _server.DisposeAsync();
    }

    private (Runner Runner, MetricsCollector Metrics) NewRunner(RunOptions options, ClientTimeouts? timeouts = null)
    {
        var metrics = new MetricsCollector();
        var client = new SseChatClient(_http, _server.BaseAddress, "fake-model", timeouts ?? new ClientTimeouts(TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(5)));
        return (new Runner(client, metrics, options), metrics);
    }

    private static ScenarioOptions Options(double? rate = null, int? concurrency = null, TimeSpan? duration = null, int tenants = 2) => new()
    {
        Tenants = Enumerable.Range(1, tenants).Select(i => new Tenant($"tenant-{i}", $"key-{i}")).ToList(),
        Rate = rate,
        Concurrency = concurrency,
        Duration = duration ?? TimeSpan.FromSeconds(2),
    };

    [Fact]
    public async Task RunAsync_MaxRequests_StopsAtExactlyThatMany()
    {
        var plan = ScenarioCatalog.Build("overhead", Options(rate: 200, duration: TimeSpan.FromSeconds(20)));
        var (runner, _) = NewRunner(new RunOptions { Duration = TimeSpan.FromSeconds(20), MaxRequests = 25 });
        var run = await runner.RunAsync(plan.Flows, CancellationToken.None);
        Assert.Equal(25, run.Issued);
        Assert.Equal(25, run.Recorded);
        Assert.Equal(25, _server.Requests);
        Assert.True(run.ElapsedSeconds < 15, $"took {run.ElapsedSeconds} s");
    }

    [Fact]
    public async Task RunAsync_Duration_StopsIssuingAndRateIsRoughlyKept()
    {
        var plan = ScenarioCatalog.Build("overhead", Options(rate: 40, duration: TimeSpan.FromSeconds(1.5)));
        var (runner, _) = NewRunner(new RunOptions { Duration = TimeSpan.FromSeconds(1.5) });
        var run = await runner.RunAsync(plan.Flows, CancellationToken.None);
        Assert.InRange(run.Issued, 25, 110); // Poisson, nominal 60
        Assert.Equal(run.Issued, run.Recorded);
        Assert.True(run.ElapsedSeconds < 8, $"took {run.ElapsedSeconds} s");
        Assert.All(run.Results, r => Assert.True(r.StartSeconds <= 1.6, $"started at {r.StartSeconds}"));
    }

    [Fact]
    public async Task RunAsync_MixedFailures_EveryRequestEndsWithAnOutcome()
    {
        // Every 4th request errors, every 5th hangs (client timeout), every 7th drops mid-stream.
        _server.Behavior = n => n % 4 == 1 ? FakeBehavior.Error503 : n % 5 == 2 ? FakeBehavior.Hang : n % 7 == 3 ? FakeBehavior.DropMidStream : FakeBehavior.Stream;
        var plan = ScenarioCatalog.Build("overhead", Options(rate: 60, duration: TimeSpan.FromSeconds(1)));
        var (runner, metrics) = NewRunner(new RunOptions { Duration = TimeSpan.FromSeconds(1) },
            new ClientTimeouts(TimeSpan.FromMilliseconds(500), TimeSpan.FromMilliseconds(500), TimeSpan.FromSeconds(2)));
        var run = await runner.RunAsync(plan.Flows, CancellationToken.None);

        Assert.Equal(run.Issued, run.Recorded);
        Assert.Equal(0, metrics.InFlight);
        Assert.Equal(run.Issued, run.Results.Count);
        var reasons = run.Results.Where(r => r.Outcome == Outcome.Error).GroupBy(r => r.ErrorReason!.Split(':')[0]).ToDictionary(g => g.Key, g => g.Count());
        Assert.Contains("http_503", reasons.Keys);
        Assert.Contains("timeout_first_token", reasons.Keys);
        Assert.Contains(run.Results, r => r.Outcome == Outcome.Ok);
        Assert.DoesNotContain(run.Results, r => r.ErrorReason == "no_outcome");
    }

    [Fact]
    public async Task RunAsync_ServerKilledMidRun_RequestsAfterwardsAreErrorsAndNoneIsLost()
    {
        _server.FirstDelay = TimeSpan.FromMilliseconds(100);
        _server.Gap = TimeSpan.FromMilliseconds(50);
        _server.Chunks = 6;
        var o = Options(rate: 30, duration: TimeSpan.FromSeconds(4));
        var plan = ScenarioCatalog.Build("failover", new ScenarioOptions
        {
            Tenants = o.Tenants, Rate = 30, Duration = o.Duration, KillAt = TimeSpan.FromSeconds(0.8),
        }, killCallback: async _ =>
        {
            // A loaded machine may not have answered anything by 0.8 s: the kill waits for one answer (bounded).
            for (int i = 0; i < 200 && _server.Completed == 0; i++)
            {
                await Task.Delay(50);
            }

            await _server.StopAsync();
        });
        var (runner, _) = NewRunner(new RunOptions { Duration = o.Duration, Actions = plan.Actions });
        var run = await runner.RunAsync(plan.Flows, CancellationToken.None);

        Assert.Equal(run.Issued, run.Recorded);
        var kill = Assert.Single(run.Events);
        Assert.Equal("kill-worker", kill.Name);
        Assert.Null(kill.Error);
        Assert.Contains(run.Results, r => r.Outcome == Outcome.Ok && r.StartSeconds < kill.AtSeconds);
        var after = run.Results.Where(r => r.StartSeconds > kill.AtSeconds + 0.3).ToList();
        Assert.NotEmpty(after);
        Assert.All(after, r => Assert.Equal(Outcome.Error, r.Outcome));
        Assert.All(after, r => Assert.False(string.IsNullOrEmpty(r.ErrorReason)));
    }

    [Fact]
    public async Task RunAsync_KeepConstant_NeverMoreInFlightThanUsers()
    {
        _server.FirstDelay = TimeSpan.FromMilliseconds(50);
        _server.Gap = TimeSpan.FromMilliseconds(20);
        var plan = ScenarioCatalog.Build("overhead", Options(concurrency: 3, duration: TimeSpan.FromSeconds(1.2)));
        var (runner, _) = NewRunner(new RunOptions { Duration = TimeSpan.FromSeconds(1.2) });
        var run = await runner.RunAsync(plan.Flows, CancellationToken.None);
        Assert.InRange(_server.MaxInFlight, 1, 3);
        Assert.True(run.Issued >= 6, $"only {run.Issued} requests");
        Assert.Equal(run.Issued, run.Recorded);
    }

    [Fact]
    public async Task RunAsync_NoisyNeighbour_FirstTenantSendsAboutTenTimesMore()
    {
        var o = Options(rate: 5, duration: TimeSpan.FromSeconds(3), tenants: 3);
        var plan = ScenarioCatalog.Build("noisy-neighbour", o);
        var (runner, metrics) = NewRunner(new RunOptions { Duration = o.Duration });
        await runner.RunAsync(plan.Flows, CancellationToken.None);
        long noisy = metrics.Live["tenant-1"].Issued;
        long quiet = metrics.Live["tenant-2"].Issued + metrics.Live["tenant-3"].Issued;
        Assert.InRange(noisy / (quiet / 2.0), 3, 40); // nominal 10 (150 vs 15 + 15); Poisson and a loaded machine
        Assert.Equal(metrics.Issued, metrics.Recorded);
        Assert.All(_server.AuthHeaders, h => Assert.StartsWith("Bearer key-", h, StringComparison.Ordinal));
    }

    [Fact]
    public async Task RunAsync_MultiTurn_NextTurnCarriesThePreviousAnswer()
    {
        var plan = ScenarioCatalog.Build("multi-turn", new ScenarioOptions
        {
            Tenants = [new Tenant("t", null)], Concurrency = 1, Turns = 3, Think = TimeSpan.FromMilliseconds(10), Duration = TimeSpan.FromSeconds(10),
        });
        var (runner, _) = NewRunner(new RunOptions { Duration = TimeSpan.FromSeconds(10), MaxRequests = 3 });
        var run = await runner.RunAsync(plan.Flows, CancellationToken.None);
        Assert.Equal(3, run.Issued);
        var third = _server.Bodies[2].RootElement.GetProperty("messages");
        // system, user, assistant, user, assistant, user
        Assert.Equal(6, third.GetArrayLength());
        Assert.Equal("assistant", third[2].GetProperty("role").GetString());
        Assert.Equal("tok0 tok1 tok2 tok3 ", third[2].GetProperty("content").GetString());
        // Each turn's messages start with the previous turn's messages: an exact prefix.
        var second = _server.Bodies[1].RootElement.GetProperty("messages");
        for (int i = 0; i < second.GetArrayLength(); i++)
        {
            Assert.Equal(second[i].GetProperty("content").GetString(), third[i].GetProperty("content").GetString());
        }
    }

    [Fact]
    public async Task RunAsync_CancelledByCaller_DrainsAndRecordsEverything()
    {
        _server.Gap = TimeSpan.FromMilliseconds(100);
        _server.Chunks = 5;
        var plan = ScenarioCatalog.Build("overhead", Options(rate: 50, duration: TimeSpan.FromSeconds(30)));
        var (runner, _) = NewRunner(new RunOptions { Duration = TimeSpan.FromSeconds(30) });
        using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(700));
        var run = await runner.RunAsync(plan.Flows, cts.Token);
        Assert.True(run.ElapsedSeconds < 10);
        Assert.True(run.Issued > 5);
        Assert.Equal(run.Issued, run.Recorded);
    }
}
