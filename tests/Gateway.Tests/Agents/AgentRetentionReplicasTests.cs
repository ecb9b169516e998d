using System.Text.Json;
using Gateway.Agents;
using Gateway.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Worker;

namespace Gateway.Tests.Agents;

/// <summary>
/// Two gateway replicas in front of one real worker, an agent session whose turns a non-sticky load balancer spreads over
/// both: each replica learns only from gaps whose both ends it saw, and a gap whose session moved on elsewhere is
/// superseded, not taken as one long observation.
/// </summary>
public sealed class AgentRetentionReplicasTests
{
    private const string Session = "agent-replicas";

    // The conversation after n model turns: the first turn's tool call and its result, then (n - 1) plain exchanges.
    private static string Turn(string toolCallId, string arguments, int priorTurns)
    {
        var messages = new List<object>
        {
            new { role = "system", content = AgentRetentionTests.Context }, // the conversation turn 0 (FirstTurn) began
            new { role = "user", content = "fix the failing test" },
            new { role = "assistant", content = (string?)null, tool_calls = new[] { new { id = toolCallId, type = "function", function = new { name = "bash", arguments } } } },
            new { role = "tool", tool_call_id = toolCallId, content = "1 passed" },
        };
        for (int i = 1; i < priorTurns; i++)
        {
            messages.Add(new { role = "assistant", content = $"step {i} done" });
            messages.Add(new { role = "user", content = $"continue with step {i + 1}" });
        }

        return JsonSerializer.Serialize(new { model = "llama3-8b", max_tokens = 8, messages });
    }

    private static Task SendAsync(HttpClient http, string body) => AgentRetentionTests.SendTurnAsync(http, body, Session);

    // The decision on a delivered turn is made as the handler finishes, possibly just after the client has its answer: wait
    // (bounded) until the replica has decided on n turns before sending the session's next one.
    private static async Task DecidedAsync(Gateway.Core.Agents.RetentionStats stats, int n)
    {
        for (int i = 0; i < 500 && stats.Retains + stats.Skipped < n; i++)
        {
            await Task.Delay(10);
        }

        Assert.Equal(n, stats.Retains + stats.Skipped);
    }

    [Fact]
    public async Task SessionSpreadOverTwoReplicas_EachClosesOnlyItsOwnNextTurn_AndAStaleGapIsSuperseded()
    {
        await using var worker = await WorkerHost.StartAsync(new WorkerOptions { KvBlocks = 65_536, TimeScale = 1.0 });
        var config = new Dictionary<string, string?> { ["Gateway:Agents:Mode"] = "shadow", ["Gateway:Agents:Policy"] = "predictive", ["Gateway:Agents:HbmPins"] = "true" };
        string url = worker.BaseAddress.GetLeftPart(UriPartial.Authority);
        await using var a = await TestGateway.StartAsync([url], config);
        await using var b = await TestGateway.StartAsync([url], config);
        using var httpA = TestGateway.Client(a);
        using var httpB = TestGateway.Client(b);
        var statsA = a.Services.GetRequiredService<AgentRetentionService>().Stats;
        var statsB = b.Services.GetRequiredService<AgentRetentionService>().Stats;

        // Turn 0 on A ends in a tool call: A opens a tool gap.
        var (id, args) = await AgentRetentionTests.ToolCallTurnAsync(httpA, Session);
        await DecidedAsync(statsA, 1);

        // Turns 1 and 2 go to B: B had no gap open for turn 1 (a first turn there), and closes the one turn 1 opened at turn 2.
        await SendAsync(httpB, Turn(id, args, priorTurns: 1));
        await DecidedAsync(statsB, 1);
        await SendAsync(httpB, Turn(id, args, priorTurns: 2));
        Assert.Equal(1, statsB.GapsClosed);
        Assert.Equal(0, statsB.Superseded);

        // Turn 3 comes back to A: A's gap from turn 0 spans three turns served elsewhere. Superseded: not a 3-turn "tool gap".
        await SendAsync(httpA, Turn(id, args, priorTurns: 3));
        Assert.Equal(1, statsA.Superseded);
        Assert.Equal(0, statsA.GapsClosed);
        Assert.Equal(0, statsA.ToolGapsClosed);
        Assert.Equal(0, statsA.AbsLogErrorCount);
    }
}
