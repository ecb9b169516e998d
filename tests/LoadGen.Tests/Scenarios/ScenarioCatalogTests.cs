using System.Text.Json;
using LoadGen.Client;
using LoadGen.Load;
using LoadGen.Metrics;
using LoadGen.Scenarios;

namespace LoadGen.Tests.Scenarios;

public sealed class ScenarioCatalogTests
{
    private static ScenarioOptions Noisy(double factor, IReadOnlyList<TimeSpan>? arrivals = null) => new()
    {
        Tenants = [new Tenant("tenant-1", "key-1"), new Tenant("tenant-2", "key-2"), new Tenant("tenant-3", "key-3")],
        Rate = 8,
        Duration = TimeSpan.FromSeconds(1.5),
        PromptTokens = 24,
        NoisyFactor = factor,
        Arrivals = arrivals,
    };

    /// <summary>Runs the plan against a fake server and returns each key's prompts in the order they were received.</summary>
    private static async Task<Dictionary<string, List<string>>> PromptsByKeyAsync(ScenarioOptions o)
    {
        await using var server = await FakeOpenAiServer.StartAsync();
        using var http = SseChatClient.CreateHttpClient();
        var client = new SseChatClient(http, server.BaseAddress, "m", ClientTimeouts.Default);
        var plan = ScenarioCatalog.Build("noisy-neighbour", o);
        // The run's own deadline is well past the simulations' end, so which arrivals are sent depends only on the
        // seeded schedule, not on how late a loaded machine starts the last one.
        var run = await new Runner(client, new MetricsCollector(), new RunOptions { Duration = o.Duration + TimeSpan.FromSeconds(10) }).RunAsync(plan.Flows, CancellationToken.None);
        Assert.Equal(run.Issued, run.Recorded);
        var byKey = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        lock (server.Bodies)
        {
            for (int i = 0; i < server.Bodies.Count; i++)
            {
                string key = server.AuthHeaders[i]["Bearer ".Length..];
                string prompt = server.Bodies[i].RootElement.GetProperty("messages")[0].GetProperty("content").GetString()!;
                (byKey.TryGetValue(key, out var list) ? list : byKey[key] = []).Add(prompt);
            }
        }

        return byKey;
    }

    [Fact]
    public async Task NoisyNeighbour_FactorZero_NoisyTenantSendsNothing_QuietTenantsSendExactlyTheSameRequests()
    {
        var flood = await PromptsByKeyAsync(Noisy(10));
        var alone = await PromptsByKeyAsync(Noisy(0));

        Assert.True(flood.GetValueOrDefault("key-1")?.Count > 0, "the noisy tenant sent nothing at factor 10");
        Assert.False(alone.ContainsKey("key-1"), "the noisy tenant sent requests at factor 0");
        foreach (string quiet in new[] { "key-2", "key-3" })
        {
            // Same seeds per flow → the same Poisson arrivals (so the same count within the duration) and the same
            // prompts; arrival order on the wire may differ by a few ms, so compare as sorted lists.
            Assert.NotEmpty(flood[quiet]);
            Assert.Equal(flood[quiet].Order(StringComparer.Ordinal), alone[quiet].Order(StringComparer.Ordinal));
        }
    }

    [Fact]
    public void NoisyNeighbour_FactorZeroWithTraceArrivals_QuietFlowsKeepTheTraceAndTheNoisyFlowIsEmpty()
    {
        var arrivals = Enumerable.Range(0, 20).Select(i => TimeSpan.FromMilliseconds(i * 50)).ToList();
        var plan = ScenarioCatalog.Build("noisy-neighbour", Noisy(0, arrivals));
        Assert.Equal(3, plan.Flows.Count); // the silent flow keeps its index: the quiet flows' seeds do not move
        Assert.Empty(plan.Flows[0].Simulations);
        Assert.Equal(arrivals, Assert.IsType<LoadSimulation.InjectAt>(Assert.Single(plan.Flows[1].Simulations)).Offsets);
        Assert.Contains("sends nothing", plan.Description, StringComparison.Ordinal);
    }
}
