using Gateway.Hosting;

namespace Gateway.Tests.Infrastructure;

/// <summary>A test class's fixture: one <see cref="FakeWorker"/> and a real gateway in front of it, per test.</summary>
public abstract class OneFakeWorkerGateway : IAsyncLifetime
{
    /// <summary>The worker behind the gateway (records every request it gets).</summary>
    protected FakeWorker Upstream { get; private set; } = null!;

    /// <summary>The gateway under test (Kestrel on loopback).</summary>
    protected GatewayHost Host { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Upstream = await FakeWorker.StartAsync();
        Host = await TestGateway.StartAsync([Upstream.Url]);
    }

    public async Task DisposeAsync()
    {
        await Host.DisposeAsync();
        await Upstream.DisposeAsync();
    }
}
