using System.Text.Json;
using Gateway.Agents;
using Gateway.Hosting;
using Gateway.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Worker;

namespace Gateway.Tests.Agents;

/// <summary>
/// Pin renewal (<c>Gateway:Agents:MaxRenewals</c>) live: a real in-process worker and gateway; the gateway's clock is the
/// system clock plus an offset the test moves, so a pin's TTL can run out in the gateway's view without the test waiting
/// for it (the worker keeps real time, so its pin is still there to be renewed).
/// </summary>
public sealed class AgentRenewalTests
{
    /// <summary>System time plus an offset the test advances; timers and timestamps stay the system's.</summary>
    private sealed class OffsetTime : TimeProvider
    {
        private long _offsetTicks;

        public void Advance(TimeSpan by) => Interlocked.Add(ref _offsetTicks, by.Ticks);

        public override DateTimeOffset GetUtcNow() => base.GetUtcNow() + TimeSpan.FromTicks(Interlocked.Read(ref _offsetTicks));
    }

    /// <summary>A worker and a gateway (hints enabled, predictive) after one streamed tool-call turn whose retain was sent.</summary>
    private sealed class PinnedToolTurn : IAsyncDisposable
    {
        public required WorkerHost Worker { get; init; }
        public required GatewayHost Gateway { get; init; }
        public required OffsetTime Time { get; init; }
        public required HttpClient Http { get; init; }
        public required AgentRetentionService Service { get; init; }
        public required string ToolCallId { get; init; }
        public required string Arguments { get; init; }

        public async ValueTask DisposeAsync()
        {
            Http.Dispose();
            await Gateway.DisposeAsync();
            await Worker.DisposeAsync();
        }
    }

    private static async Task<PinnedToolTurn> StartAsync(int maxRenewals)
    {
        var worker = await WorkerHost.StartAsync(new WorkerOptions { KvBlocks = 65_536, TimeScale = 1.0 });
        var time = new OffsetTime();
        var settings = new Dictionary<string, string?>
        {
            ["Gateway:Listen"] = "http://127.0.0.1:0",
            ["Gateway:Workers:Mode"] = "Static",
            ["Gateway:Workers:Urls:0"] = worker.BaseAddress.GetLeftPart(UriPartial.Authority),
            ["Gateway:Auth:ServerSecret"] = TestGateway.Secret,
            ["Gateway:Health:Interval"] = "00:00:00.200",
            ["Logging:LogLevel:Default"] = "Warning",
            ["Gateway:Agents:Mode"] = "enabled",
            ["Gateway:Agents:Policy"] = "predictive",
            ["Gateway:Agents:HbmPins"] = "true",
            ["Gateway:Agents:MaxRenewals"] = maxRenewals.ToString(System.Globalization.CultureInfo.InvariantCulture),
        };
        var gw = await GatewayHost.StartAsync(settings, services => services.AddSingleton<TimeProvider>(time));
        var http = TestGateway.Client(gw);
        var service = gw.Services.GetRequiredService<AgentRetentionService>();
        var (id, args) = await AgentRetentionTests.ToolCallTurnAsync(http);
        await WaitForAsync(() => service.Hints.Sent == 1, $"first retain sent: {service.Hints}");
        return new PinnedToolTurn { Worker = worker, Gateway = gw, Time = time, Http = http, Service = service, ToolCallId = id, Arguments = args };
    }

    private static async Task WaitForAsync(Func<bool> condition, string what)
    {
        for (int i = 0; i < 200 && !condition(); i++)
        {
            await Task.Delay(50);
        }

        Assert.True(condition(), what);
    }

    /// <summary>Moves the gateway's clock in half-second steps (each a renewal check) until <paramref name="done"/> or 400 s.</summary>
    private static double AdvanceUntil(OffsetTime time, AgentRetentionService service, Func<bool> done)
    {
        double advanced = 0;
        while (!done() && advanced < 400)
        {
            time.Advance(TimeSpan.FromSeconds(0.5));
            advanced += 0.5;
            service.RenewExpiring();
        }

        return advanced;
    }

    [Fact]
    public async Task PinRunningOut_SessionNotBack_IsRenewedOnTheWorker_AtMostMaxRenewalsTimes()
    {
        await using var t = await StartAsync(maxRenewals: 1);
        var service = t.Service;
        Assert.Equal(1, t.Worker.GetEngineState().PinsActive);

        // The tool runs long: the gateway's clock passes the pin's TTL while the session has not come back.
        double renewedAfter = AdvanceUntil(t.Time, service, () => service.Stats.Renewals > 0);
        Assert.True(service.Stats.Renewals == 1, $"no renewal within {renewedAfter} s of gateway time");
        await WaitForAsync(() => service.Hints.Sent == 2, $"renewal sent to the worker: {service.Hints}");
        Assert.Equal(0, service.Hints.Failed);
        Assert.Equal(1, t.Worker.GetEngineState().PinsActive); // the worker replaced the session's pin, it did not add one

        // One renewal allowed: the rest of the gap brings no other.
        AdvanceUntil(t.Time, service, () => false);
        Assert.Equal(1, service.Stats.Renewals);

        // The session comes back (long after both TTLs in the gateway's view): the gap closes as a miss.
        using var req = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = TestGateway.Json(AgentRetentionTests.SecondTurn(t.ToolCallId, t.Arguments)) };
        req.Headers.Add("x-session-id", "agent-1");
        using var resp = await t.Http.SendAsync(req);
        Assert.True(resp.IsSuccessStatusCode, await resp.Content.ReadAsStringAsync());
        Assert.Equal(1, service.Stats.ToolGapsClosed);
        Assert.Equal(1, service.Stats.Misses);
    }

    [Fact]
    public async Task RenewalsOff_PinRunsOut_NothingMoreIsSent()
    {
        await using var t = await StartAsync(maxRenewals: 0);
        var service = t.Service;
        AdvanceUntil(t.Time, service, () => false);
        await Task.Delay(200);
        Assert.Equal(0, service.Stats.Renewals);
        Assert.Equal(1, service.Hints.Sent);
    }
}
