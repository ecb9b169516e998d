using System.Net;
using System.Text.Json;
using Gateway.Core.Routing;
using Gateway.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace Gateway.Tests.Proxy;

/// <summary>
/// The safety net: a failure nothing on the request path foresaw (here a routing policy that throws) answers a
/// 500 in OpenAI shape, never an empty 500, and the gateway goes on serving.
/// </summary>
public sealed class UnhandledErrorTests : IAsyncLifetime
{
    private FakeWorker _w = null!;
    private Gateway.Hosting.GatewayHost _gw = null!;
    private readonly ThrowingPolicy _policy = new();

    public async Task InitializeAsync()
    {
        _w = await FakeWorker.StartAsync();
        var settings = new Dictionary<string, string?>
        {
            ["Gateway:Listen"] = "http://127.0.0.1:0",
            ["Gateway:Workers:Mode"] = "Static",
            ["Gateway:Workers:Urls:0"] = _w.Url,
            ["Gateway:Auth:ServerSecret"] = TestGateway.Secret,
            ["Gateway:Health:Interval"] = "00:00:00.200",
            ["Gateway:Scheduling:Enabled"] = "false",
            ["Logging:LogLevel:Default"] = "None",
        };
        _gw = await Gateway.Hosting.GatewayHost.StartAsync(settings, s => s.AddSingleton<IRoutingPolicy>(_policy));
    }

    public async Task DisposeAsync()
    {
        await _gw.DisposeAsync();
        await _w.DisposeAsync();
    }

    [Fact]
    public async Task ExceptionOnTheRequestPath_Is500InOpenAiShape_AndTheGatewayKeepsServing()
    {
        using var http = TestGateway.Client(_gw);
        const string chat = "{\"model\":\"llama3-8b\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";

        _policy.Throw = true;
        var resp = await http.PostAsync("v1/chat/completions", TestGateway.Json(chat));
        Assert.Equal(HttpStatusCode.InternalServerError, resp.StatusCode);
        Assert.Equal("application/json", resp.Content.Headers.ContentType?.MediaType);
        using (var doc = JsonDocument.Parse(await resp.Content.ReadAsStringAsync()))
        {
            var error = doc.RootElement.GetProperty("error");
            Assert.Equal("server_error", error.GetProperty("type").GetString());
            Assert.Equal("internal_error", error.GetProperty("code").GetString());
            Assert.DoesNotContain("policy exploded", error.GetProperty("message").GetString(), StringComparison.Ordinal);
        }

        _policy.Throw = false;
        Assert.Equal(HttpStatusCode.OK, (await http.PostAsync("v1/chat/completions", TestGateway.Json(chat))).StatusCode);
    }

    private sealed class ThrowingPolicy : IRoutingPolicy
    {
        private readonly IRoutingPolicy _inner = RoutingPolicies.Create(RoundRobinPolicy.PolicyName, new RoutingPolicyContext { Time = TimeProvider.System });

        public volatile bool Throw;

        public string Name => "throwing";

        public RouteDecision Route(RouteRequest request, IReadOnlyList<WorkerInfo> workers) =>
            Throw ? throw new InvalidOperationException("policy exploded") : _inner.Route(request, workers);

        public void OnRouted(RouteRequest request, WorkerInfo worker) => _inner.OnRouted(request, worker);

        public void OnCompleted(RouteRequest request, WorkerInfo worker, int actualCachedTokens) => _inner.OnCompleted(request, worker, actualCachedTokens);
    }
}
