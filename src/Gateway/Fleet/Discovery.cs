using System.Net;
using System.Net.Sockets;
using Gateway.Configuration;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Gateway.Fleet;

/// <summary>Static discovery: the configured URL list, set once at start.</summary>
public sealed class StaticWorkerDiscovery(WorkerRegistry registry, IOptions<GatewayOptions> options) : IHostedService
{
    /// <inheritdoc />
    public Task StartAsync(CancellationToken cancellationToken)
    {
        registry.SetWorkers(options.Value.Workers.Urls.Select(u => new Uri(u)));
        return Task.CompletedTask;
    }

    /// <inheritdoc />
    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}

/// <summary>
/// DNS discovery of a headless Service: resolves <see cref="DnsDiscoveryOptions.Host"/> with <see cref="Dns"/> every
/// <see cref="DnsDiscoveryOptions.RefreshInterval"/>; every A/AAAA record is one worker at <c>scheme://ip:port</c>.
/// A failed lookup keeps the previous list (a DNS hiccup must not empty the fleet).
/// </summary>
public sealed partial class DnsWorkerDiscovery(WorkerRegistry registry, IOptions<GatewayOptions> options, TimeProvider time, ILogger<DnsWorkerDiscovery> logger)
    : BackgroundService
{
    /// <summary>Resolves once and updates the registry; returns the URLs found (null on failure).</summary>
    public async Task<IReadOnlyList<Uri>?> ResolveOnceAsync(CancellationToken ct)
    {
        var d = options.Value.Workers.Dns;
        try
        {
            var addresses = await Dns.GetHostAddressesAsync(d.Host, ct).ConfigureAwait(false);
            var urls = new List<Uri>(addresses.Length);
            foreach (var a in addresses)
            {
                if (a.AddressFamily is not (AddressFamily.InterNetwork or AddressFamily.InterNetworkV6))
                {
                    continue;
                }

                string host = a.AddressFamily == AddressFamily.InterNetworkV6 ? $"[{a}]" : a.ToString();
                urls.Add(new Uri($"{d.Scheme}://{host}:{d.Port}"));
            }

            urls.Sort((x, y) => string.CompareOrdinal(x.AbsoluteUri, y.AbsoluteUri));
            registry.SetWorkers(urls);
            Log.Resolved(logger, d.Host, urls.Count);
            return urls;
        }
        catch (Exception ex) when (ex is SocketException or ArgumentException)
        {
            Log.Failed(logger, d.Host, ex.Message);
            return null;
        }
    }

    /// <inheritdoc />
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            await ResolveOnceAsync(stoppingToken).ConfigureAwait(false);
            try
            {
                await Task.Delay(options.Value.Workers.Dns.RefreshInterval, time, stoppingToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = EventIds.DnsResolved, Level = LogLevel.Debug, Message = "DNS {Host}: {Count} workers")]
        public static partial void Resolved(ILogger logger, string host, int count);

        [LoggerMessage(EventId = EventIds.DnsFailed, Level = LogLevel.Warning, Message = "DNS lookup of {Host} failed ({Reason}); keeping the previous worker list")]
        public static partial void Failed(ILogger logger, string host, string reason);
    }
}
