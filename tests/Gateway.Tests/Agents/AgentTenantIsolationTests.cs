using System.Text.Json;
using Gateway.Agents;
using Gateway.Auth;
using Gateway.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Worker;

namespace Gateway.Tests.Agents;

/// <summary>Session ids are the client's choice: two tenants that pick the same one must not touch each other's KV pins.</summary>
public sealed class AgentTenantIsolationTests
{
    private const string KeyB = "sk-tenant-b-isolation";

    [Fact]
    public async Task SameSessionIdFromAnotherTenant_DoesNotReleaseThePinOfTheFirst()
    {
        await using var worker = await WorkerHost.StartAsync(new WorkerOptions { KvBlocks = 65_536, TimeScale = 1.0 });
        await using var gw = await TestGateway.StartAsync([worker.BaseAddress.GetLeftPart(UriPartial.Authority)], new Dictionary<string, string?>
        {
            ["Gateway:Agents:Mode"] = "enabled",
            ["Gateway:Agents:Policy"] = "fixed:30",
            ["Gateway:Auth:Keys:0:Hash"] = ApiKeyAuthenticator.HashKey(TestGateway.Secret, KeyB),
            ["Gateway:Auth:Keys:0:Tenant"] = "b/team/key",
        });
        using var httpA = TestGateway.Client(gw);
        using var httpB = TestGateway.Client(gw, KeyB);
        using var plain = new HttpClient { BaseAddress = worker.BaseAddress };
        var service = gw.Services.GetRequiredService<AgentRetentionService>();

        // Tenant A (the demo key): a tool-call turn in session "shared" is pinned for 30 s.
        await AgentRetentionTests.ToolCallTurnAsync(httpA, "shared");
        int pinned = 0;
        for (int i = 0; i < 100 && pinned == 0; i++)
        {
            pinned = await PinnedAsync(plain);
            if (pinned == 0)
            {
                await Task.Delay(50);
            }
        }

        Assert.True(pinned > 10, $"pinned blocks {pinned}");

        // Tenant B, same session id, a plain answer (a human gap): fixed:30 sends a release for B's session.
        await AgentRetentionTests.SendTurnAsync(httpB, """{"model":"llama3-8b","max_tokens":4,"messages":[{"role":"user","content":"hello from b"}]}""", "shared");

        for (int i = 0; i < 200 && service.Hints.Sent < 2; i++)
        {
            await Task.Delay(25);
        }

        Assert.Equal(2, service.Hints.Sent); // A's retain and B's release both reached the worker
        Assert.Equal(pinned, await PinnedAsync(plain)); // B's release named B's session, not A's
    }

    private static async Task<int> PinnedAsync(HttpClient worker)
    {
        using var state = JsonDocument.Parse(await worker.GetStringAsync("/worker/state"));
        return state.RootElement.GetProperty("kv_blocks_pinned").GetInt32();
    }
}
