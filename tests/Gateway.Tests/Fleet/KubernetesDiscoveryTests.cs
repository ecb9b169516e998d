using System.Globalization;
using System.Net;
using System.Text.Json;
using System.Threading.Channels;
using Gateway.Configuration;
using Gateway.Fleet;
using Gateway.Tests.Infrastructure;
using k8s.Models;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Gateway.Tests.Fleet;

/// <summary>
/// <c>Gateway:Workers:Mode=Kubernetes</c> against a local HTTP server on 127.0.0.1 that answers the Kubernetes API's
/// EndpointSlice list (<c>GET /apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices?labelSelector=...</c>) and
/// watch (<c>&amp;watch=true</c>: newline-delimited watch events) the way the API server does.
/// </summary>
public sealed class KubernetesDiscoveryTests
{
    private static V1EndpointSlice Slice(string name, int port, params (string Ip, bool? Ready)[] endpoints) => new()
    {
        ApiVersion = "discovery.k8s.io/v1",
        Kind = "EndpointSlice",
        Metadata = new V1ObjectMeta { Name = name, NamespaceProperty = "llm", Labels = new Dictionary<string, string> { ["kubernetes.io/service-name"] = "workers" } },
        AddressType = "IPv4",
        Ports = [new Discoveryv1EndpointPort { Name = "http", Port = port, Protocol = "TCP" }],
        Endpoints = endpoints.Select(e => new V1Endpoint { Addresses = [e.Ip], Conditions = new V1EndpointConditions { Ready = e.Ready } }).ToList(),
    };

    [Fact]
    public void ReadyWorkers_SkipsNotReady_UnsetMeansReady_UsesTheNamedPort()
    {
        var slices = new[]
        {
            Slice("a", 8000, ("10.0.0.2", true), ("10.0.0.1", null), ("10.0.0.3", false)),
            Slice("b", 9000, ("10.0.1.1", true)),
        };
        slices[1].Ports![0].Name = "metrics";
        var urls = KubernetesWorkerDiscovery.ReadyWorkers(slices, new KubernetesDiscoveryOptions()).Select(u => u.ToString()).ToList();
        Assert.Equal(["http://10.0.0.1:8000/", "http://10.0.0.2:8000/", "http://10.0.1.1:9000/"], urls);
        var named = KubernetesWorkerDiscovery.ReadyWorkers(slices, new KubernetesDiscoveryOptions { PortName = "http" });
        Assert.DoesNotContain(named, u => u.Port == 9000); // slice b has no port named http
    }

    [Fact]
    public async Task ListThenWatch_FollowsReadyEndpoints_ResyncsAfterAWatchError_ServesThroughADiscoveredWorker()
    {
        await using var worker = await FakeWorker.StartAsync();
        await using var api = await FakeKubernetesApi.StartAsync();
        api.Set(Slice("workers-1", worker.BaseAddress.Port, ("127.0.0.1", true), ("10.0.0.9", false)));
        await using var gw = await Gateway.Hosting.GatewayHost.StartAsync(new Dictionary<string, string?>
        {
            ["Gateway:Listen"] = "http://127.0.0.1:0",
            ["Gateway:Workers:Mode"] = "Kubernetes",
            ["Gateway:Workers:Kubernetes:Service"] = "workers",
            ["Gateway:Workers:Kubernetes:Namespace"] = "llm",
            ["Gateway:Workers:Kubernetes:ApiServer"] = api.Url,
            ["Gateway:Workers:Kubernetes:ResyncDelay"] = "00:00:00.100",
            ["Gateway:Health:Interval"] = "00:00:00.200",
            ["Logging:LogLevel:Default"] = "Warning",
        });
        string[] Workers() => gw.Workers.All.Select(e => e.Prefix).Order(StringComparer.Ordinal).ToArray();
        string local = $"http://127.0.0.1:{worker.BaseAddress.Port}";

        // The list: only the ready endpoint; requests are served through it.
        Assert.Equal([local], Workers());
        using var http = TestGateway.Client(gw);
        var resp = await http.PostAsync("v1/chat/completions", TestGateway.Json("{\"model\":\"llama3-8b\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"));
        Assert.Equal(HttpStatusCode.OK, resp.StatusCode);
        Assert.Contains("labelSelector=kubernetes.io%2Fservice-name%3Dworkers", api.LastQuery, StringComparison.Ordinal);

        // Watch: the second endpoint becomes ready, a new slice arrives, then one is deleted.
        await api.WatchOpened.Task.WaitAsync(TimeSpan.FromSeconds(10));
        await api.PushAsync("MODIFIED", Slice("workers-1", worker.BaseAddress.Port, ("127.0.0.1", true), ("10.0.0.9", true)));
        await WaitAsync(() => Workers().Length == 2, "the newly ready endpoint is added");
        await api.PushAsync("ADDED", Slice("workers-2", 8000, ("10.0.2.1", null)));
        await WaitAsync(() => Workers().Contains("http://10.0.2.1:8000"), "the new slice's endpoint is added");
        await api.PushAsync("DELETED", Slice("workers-2", 8000, ("10.0.2.1", null)));
        await WaitAsync(() => Workers().Length == 2 && !Workers().Contains("http://10.0.2.1:8000"), "the deleted slice's endpoint is removed");

        // A watch error (410 Gone: our resourceVersion expired) ends the watch; the discovery lists again and picks
        // up what changed meanwhile without an event.
        api.Set(Slice("workers-1", worker.BaseAddress.Port, ("127.0.0.1", true)), Slice("workers-3", 8000, ("10.0.3.1", true)));
        int listsBefore = api.Lists;
        await api.FailWatchAsync();
        await WaitAsync(() => api.Lists > listsBefore, "a resync list after the watch error");
        await WaitAsync(() => Workers().SequenceEqual(new[] { "http://10.0.3.1:8000", local }), "the relisted slices replace the old ones");

        // The API server goes away: the gateway keeps its workers.
        await api.DisposeAsync();
        await Task.Delay(300);
        Assert.Equal(["http://10.0.3.1:8000", local], Workers());
    }

    private static async Task WaitAsync(Func<bool> condition, string what)
    {
        for (int i = 0; i < 500 && !condition(); i++)
        {
            await Task.Delay(20);
        }

        Assert.True(condition(), "timed out waiting until " + what);
    }

    /// <summary>Answers EndpointSlice list and watch requests like the Kubernetes API server.</summary>
    private sealed class FakeKubernetesApi : IAsyncDisposable
    {
        private readonly WebApplication _app;
        private readonly object _lock = new();
        private Dictionary<string, V1EndpointSlice> _slices = new(StringComparer.Ordinal);
        private Channel<string> _events = Channel.CreateUnbounded<string>();
        private long _version = 100;
        private int _lists;
        private bool _disposed;

        private FakeKubernetesApi(WebApplication app, string url)
        {
            _app = app;
            Url = url;
        }

        public string Url { get; }

        public int Lists => Volatile.Read(ref _lists);

        public string LastQuery { get; private set; } = "";

        public TaskCompletionSource WatchOpened { get; private set; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public static async Task<FakeKubernetesApi> StartAsync()
        {
            var b = WebApplication.CreateSlimBuilder();
            b.Logging.ClearProviders();
            b.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0));
            var app = b.Build();
            FakeKubernetesApi? self = null;
            app.MapGet("/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices", (HttpContext ctx) => self!.HandleAsync(ctx));
            await app.StartAsync();
            var addr = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
            self = new FakeKubernetesApi(app, addr);
            return self;
        }

        public void Set(params V1EndpointSlice[] slices)
        {
            lock (_lock)
            {
                _slices = slices.ToDictionary(s => s.Metadata.Name, StringComparer.Ordinal);
            }
        }

        public async Task PushAsync(string type, V1EndpointSlice slice)
        {
            lock (_lock)
            {
                slice.Metadata.ResourceVersion = (++_version).ToString(CultureInfo.InvariantCulture);
            }

            await _events.Writer.WriteAsync(JsonSerializer.Serialize(new { type, @object = Raw(slice) }));
        }

        /// <summary>Sends a 410 Gone error event and ends the watch stream.</summary>
        public async Task FailWatchAsync()
        {
            var status = new { kind = "Status", apiVersion = "v1", metadata = new { }, status = "Failure", message = "too old resource version", reason = "Expired", code = 410 };
            await _events.Writer.WriteAsync(JsonSerializer.Serialize(new { type = "ERROR", @object = status }));
            _events.Writer.TryComplete();
        }

        public async ValueTask DisposeAsync()
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            _events.Writer.TryComplete();
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            await _app.StopAsync(cts.Token);
            await _app.DisposeAsync();
        }

        private static JsonElement Raw(V1EndpointSlice s) => JsonDocument.Parse(k8s.KubernetesJson.Serialize(s)).RootElement;

        private async Task HandleAsync(HttpContext ctx)
        {
            LastQuery = ctx.Request.QueryString.Value ?? "";
            if (ctx.Request.Query["watch"] != "true")
            {
                string json;
                lock (_lock)
                {
                    json = JsonSerializer.Serialize(new
                    {
                        apiVersion = "discovery.k8s.io/v1",
                        kind = "EndpointSliceList",
                        metadata = new { resourceVersion = (++_version).ToString(CultureInfo.InvariantCulture) },
                        items = _slices.Values.Select(Raw).ToList(),
                    });
                }

                Interlocked.Increment(ref _lists);
                ctx.Response.ContentType = "application/json";
                await ctx.Response.WriteAsync(json);
                return;
            }

            Channel<string> events;
            lock (_lock)
            {
                if (_events.Reader.Completion.IsCompleted)
                {
                    _events = Channel.CreateUnbounded<string>(); // a new watch after the last one ended
                }

                events = _events;
            }

            ctx.Response.ContentType = "application/json";
            await ctx.Response.Body.FlushAsync();
            WatchOpened.TrySetResult();
            try
            {
                await foreach (var line in events.Reader.ReadAllAsync(ctx.RequestAborted))
                {
                    await ctx.Response.WriteAsync(line + "\n", ctx.RequestAborted);
                    await ctx.Response.Body.FlushAsync(ctx.RequestAborted);
                }
            }
            catch (OperationCanceledException)
            {
            }
        }
    }
}
