using System.Diagnostics;
using System.Net;
using Gateway.Configuration;
using Microsoft.Extensions.Options;
using Yarp.ReverseProxy.Forwarder;

namespace Gateway.Proxy.Pipeline;

/// <summary>
/// The HTTP client side of forwarding, one per host: pooled connections to workers (<c>Gateway:Workers:ConnectTimeout</c>,
/// <c>MaxConnectionsPerWorker</c>, trace context propagated), YARP's per-request settings and the relay limits.
/// </summary>
public sealed class WorkerConnections : IDisposable
{
    /// <summary>Creates the connection pool (singleton).</summary>
    public WorkerConnections(IOptions<GatewayOptions> options)
    {
        var o = options.Value;
        var r = o.Resilience;
        Invoker = new HttpMessageInvoker(new SocketsHttpHandler
        {
            UseProxy = false,
            AllowAutoRedirect = false,
            AutomaticDecompression = DecompressionMethods.None,
            UseCookies = false,
            ConnectTimeout = o.Workers.ConnectTimeout,
            MaxConnectionsPerServer = o.Workers.MaxConnectionsPerWorker,
            PooledConnectionIdleTimeout = TimeSpan.FromSeconds(60),
            EnableMultipleHttp2Connections = true,
            ActivityHeadersPropagator = DistributedContextPropagator.CreateDefaultPropagator(),
        });

        // Our own timers (first byte, idle) fire first; YARP's activity timeout is only a backstop.
        var backstop = (r.FirstByteTimeout > r.IdleTimeout ? r.FirstByteTimeout : r.IdleTimeout) + TimeSpan.FromSeconds(30);
        RequestConfig = new ForwarderRequestConfig
        {
            ActivityTimeout = backstop,
            Version = HttpVersion.Version11,
            VersionPolicy = HttpVersionPolicy.RequestVersionOrLower,
            AllowResponseBuffering = false,
        };
        Settings = new ProxySettings(r.IdleTimeout, o.Limits.MaxSseEventBytes, o.Limits.MaxResponseBytes);
        FirstByteTimeout = r.FirstByteTimeout;
    }

    /// <summary>The pooled client YARP sends through.</summary>
    public HttpMessageInvoker Invoker { get; }

    /// <summary>YARP's per-request settings (HTTP/1.1 or lower, no response buffering, a backstop activity timeout).</summary>
    public ForwarderRequestConfig RequestConfig { get; }

    /// <summary>Idle and size limits of the relayed answer.</summary>
    internal ProxySettings Settings { get; }

    /// <summary>How long a worker may take to its first byte (<c>Gateway:Resilience:FirstByteTimeout</c>).</summary>
    public TimeSpan FirstByteTimeout { get; }

    /// <inheritdoc />
    public void Dispose() => Invoker.Dispose();
}
