using Gateway.Configuration;
using Gateway.Fleet;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Worker;

namespace Gateway.Hosting;

/// <summary>
/// The embedded default's fleet: <see cref="EmbeddedWorkersOptions.Count"/> in-process reference workers
/// (<see cref="WorkerHost"/>) on ephemeral loopback ports, registered like any other worker (the gateway talks to them
/// over HTTP, exactly as to remote ones). On shutdown they stop only after in-flight requests have drained (bounded
/// by the host's shutdown token), so streams finishing during the drain are not cut.
/// </summary>
public sealed class EmbeddedWorkers(WorkerRegistry registry, InFlightTracker inFlight, IOptions<GatewayOptions> options) : IHostedService
{
    private readonly List<WorkerHost> _hosts = [];

    /// <summary>The running workers (for tests and diagnostics).</summary>
    public IReadOnlyList<WorkerHost> Hosts => _hosts;

    /// <inheritdoc />
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var e = options.Value.Workers.Embedded;
        var starts = new Task<WorkerHost>[e.Count];
        for (int i = 0; i < e.Count; i++)
        {
            starts[i] = WorkerHost.StartAsync(new WorkerOptions
            {
                Url = "http://127.0.0.1:0",
                Profile = e.Profile,
                TimeScale = e.TimeScale,
                KvBlocks = e.KvBlocks,
                BlockSize = options.Value.Routing.BlockSize,
                // Modelled workers tokenize as the gateway hashes (compute backends read bytes, EffectiveTokenizer's "bytes").
                Tokenizer = e.Backend == "roofline" ? options.Value.Routing.Tokenizer : "default",
                Seed = i + 1,
                Backend = e.Backend,
                ModelPath = e.Model,
                MaxToolResults = e.MaxToolResults,
                MaxTokensAsCap = e.MaxTokensAsCap,
                Threads = e.Threads > 0 ? e.Threads : Math.Max(1, Environment.ProcessorCount / Math.Max(1, e.Count)),
            }, cancellationToken);
        }

        _hosts.AddRange(await Task.WhenAll(starts).ConfigureAwait(false));
        registry.SetWorkers(_hosts.Select(h => h.BaseAddress));
    }

    /// <inheritdoc />
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await inFlight.WaitIdleAsync(cancellationToken).ConfigureAwait(false);
        foreach (var h in _hosts)
        {
            await h.DisposeAsync().ConfigureAwait(false);
        }

        _hosts.Clear();
    }
}
