using Gateway.Configuration;
using Gateway.Fleet;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace Gateway.Hosting;

/// <summary>
/// The embedded default's fleet: in-process reference workers on ephemeral loopback ports. Stops them only after
/// in-flight requests have drained (bounded by the host's shutdown token).
/// </summary>
public sealed class EmbeddedWorkers(WorkerRegistry registry, InFlightTracker inFlight, IOptions<GatewayOptions> options) : IHostedService
{
    /// <inheritdoc />
    public Task StartAsync(CancellationToken cancellationToken)
    {
        _ = registry;
        _ = options;
        throw new NotSupportedException("Embedded workers need Worker.WorkerHost (not merged yet): set Gateway:Workers:Mode to Static or Dns.");
    }

    /// <inheritdoc />
    public Task StopAsync(CancellationToken cancellationToken) => inFlight.WaitIdleAsync(cancellationToken);
}
