using System.Globalization;
using System.Net.Sockets;
using Gateway.Configuration;
using k8s;
using k8s.Autorest;
using k8s.Models;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Gateway.Fleet;

/// <summary>
/// Kubernetes discovery (<c>Gateway:Workers:Mode=Kubernetes</c>): lists the EndpointSlices of
/// <see cref="KubernetesDiscoveryOptions.Service"/> (label <c>kubernetes.io/service-name</c>) with KubernetesClient,
/// then watches them from the list's resourceVersion; every change replaces the registry's worker list with the
/// <em>ready</em> endpoints (<see cref="ReadyWorkers"/>). A watch that ends (the API server closes watches after a
/// while) is followed by a fresh list at once; a failed list or a broken watch (an error event such as 410 Gone, a
/// dropped connection) by a fresh list after <see cref="KubernetesDiscoveryOptions.ResyncDelay"/>, doubling to 30 s
/// while failures repeat. Until a list succeeds the registry keeps the workers it had (an API hiccup must not empty
/// the fleet). Needs get/list/watch on endpointslices in the namespace (the Helm chart's Role).
/// </summary>
public sealed partial class KubernetesWorkerDiscovery(WorkerRegistry registry, IOptions<GatewayOptions> options, TimeProvider time, ILogger<KubernetesWorkerDiscovery> logger)
    : BackgroundService
{
    private static readonly TimeSpan MaxResyncDelay = TimeSpan.FromSeconds(30);
    private long _lists;

    /// <summary>Successful lists so far (the first and every resync).</summary>
    public long Lists => Interlocked.Read(ref _lists);

    /// <summary>
    /// The worker URLs of a Service's EndpointSlices: per endpoint whose <c>conditions.ready</c> is not false (unset
    /// means ready, as the API documents), its first address, at the slice's port named <paramref name="o"/>'s
    /// PortName (else its first port, else the configured Port); sorted, without duplicates.
    /// </summary>
    public static IReadOnlyList<Uri> ReadyWorkers(IEnumerable<V1EndpointSlice> slices, KubernetesDiscoveryOptions o)
    {
        ArgumentNullException.ThrowIfNull(slices);
        ArgumentNullException.ThrowIfNull(o);
        var urls = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var slice in slices)
        {
            var port = slice.Ports?.FirstOrDefault(p => o.PortName.Length == 0 || p.Name == o.PortName)?.Port;
            if (port is null && o.PortName.Length > 0)
            {
                continue; // the named port is not on this slice
            }

            foreach (var e in slice.Endpoints ?? [])
            {
                if (e.Conditions?.Ready == false || e.Addresses is not { Count: > 0 })
                {
                    continue;
                }

                string host = e.Addresses[0];
                if (System.Net.IPAddress.TryParse(host, out var ip) && ip.AddressFamily == AddressFamily.InterNetworkV6)
                {
                    host = "[" + host + "]";
                }

                urls.Add($"{o.Scheme}://{host}:{(port ?? o.Port).ToString(CultureInfo.InvariantCulture)}");
            }
        }

        return urls.Select(u => new Uri(u)).ToList();
    }

    /// <inheritdoc />
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var o = options.Value.Workers.Kubernetes;
        var config = o.ApiServer.Length > 0
            ? new KubernetesClientConfiguration { Host = o.ApiServer }
            : KubernetesClientConfiguration.InClusterConfig();
        string ns = o.Namespace.Length > 0 ? o.Namespace : config.Namespace ?? "default";
        string selector = "kubernetes.io/service-name=" + o.Service;
        using var client = new Kubernetes(config);
        var delay = o.ResyncDelay;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await ListAndWatchAsync(client, ns, selector, o, () => delay = o.ResyncDelay, stoppingToken).ConfigureAwait(false);
                continue; // the watch ended normally: list again at once
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex) when (ex is HttpOperationException or HttpRequestException or KubernetesException or IOException or InvalidOperationException or System.Text.Json.JsonException)
            {
                Log.Failed(logger, ns, o.Service, ex.GetType().Name, delay.TotalSeconds);
            }

            try
            {
                await Task.Delay(delay, time, stoppingToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            delay = TimeSpan.FromTicks(Math.Min(MaxResyncDelay.Ticks, delay.Ticks * 2));
        }
    }

    private async Task ListAndWatchAsync(Kubernetes client, string ns, string selector, KubernetesDiscoveryOptions o, Action listed, CancellationToken ct)
    {
        var list = await client.DiscoveryV1.ListNamespacedEndpointSliceAsync(ns, labelSelector: selector, cancellationToken: ct).ConfigureAwait(false);
        var slices = new Dictionary<string, V1EndpointSlice>(StringComparer.Ordinal);
        foreach (var s in list.Items ?? [])
        {
            slices[s.Metadata?.Name ?? ""] = s;
        }

        Apply(slices.Values, o, ns);
        Interlocked.Increment(ref _lists);
        listed();
        Exception? watchError = null;
        var events = client.DiscoveryV1.WatchListNamespacedEndpointSliceAsync(
            ns, allowWatchBookmarks: true, labelSelector: selector, resourceVersion: list.Metadata?.ResourceVersion,
            onError: e => watchError = e, cancellationToken: ct);
        await foreach (var (type, slice) in events.ConfigureAwait(false))
        {
            switch (type)
            {
                case WatchEventType.Added or WatchEventType.Modified when slice?.Metadata?.Name is { } name:
                    slices[name] = slice;
                    break;
                case WatchEventType.Deleted when slice?.Metadata?.Name is { } name:
                    slices.Remove(name);
                    break;
                case WatchEventType.Error:
                    // e.g. 410 Gone: our resourceVersion is too old. List again.
                    throw new KubernetesException(new V1Status { Message = "watch error event", Code = 410 });
                default:
                    continue; // bookmarks
            }

            Apply(slices.Values, o, ns);
        }

        if (watchError is not null)
        {
            throw new InvalidOperationException("EndpointSlice watch failed: " + watchError.GetType().Name, watchError);
        }
    }

    private void Apply(IEnumerable<V1EndpointSlice> slices, KubernetesDiscoveryOptions o, string ns)
    {
        var urls = ReadyWorkers(slices, o);
        registry.SetWorkers(urls);
        Log.Synced(logger, ns, o.Service, urls.Count);
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = EventIds.KubernetesSynced, Level = LogLevel.Debug, Message = "EndpointSlices of {Namespace}/{Service}: {Count} ready workers")]
        public static partial void Synced(ILogger logger, string @namespace, string service, int count);

        [LoggerMessage(EventId = EventIds.KubernetesFailed, Level = LogLevel.Warning, Message = "EndpointSlices of {Namespace}/{Service}: list or watch failed ({Reason}); keeping the previous worker list, listing again in {Seconds} s")]
        public static partial void Failed(ILogger logger, string @namespace, string service, string reason, double seconds);
    }
}
