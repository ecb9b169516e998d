using System.Net;
using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.Hosting;

/// <summary>
/// /metrics and /status show every tenant's figures: with Gateway:ManagementListen they are served only on the operator
/// listener, and the API listener (what tenants reach) answers them with an OpenAI-shaped 404.
/// </summary>
public sealed class ManagementListenerTests : IAsyncLifetime
{
    private FakeWorker _w = null!;
    private Gateway.Hosting.GatewayHost _gw = null!;

    public async Task InitializeAsync()
    {
        _w = await FakeWorker.StartAsync();
        _gw = await TestGateway.StartAsync([_w.Url], new Dictionary<string, string?> { ["Gateway:ManagementListen"] = "http://127.0.0.1:0" });
    }

    public async Task DisposeAsync()
    {
        await _gw.DisposeAsync();
        await _w.DisposeAsync();
    }

    [Fact]
    public async Task OperatorPages_OnlyOnTheManagementListener_ApiOnlyOnTheApiListener()
    {
        Assert.NotNull(_gw.ManagementAddress);
        Assert.NotEqual(_gw.BaseAddress.Port, _gw.ManagementAddress!.Port);
        using var api = TestGateway.Client(_gw);
        using var ops = new HttpClient { BaseAddress = _gw.ManagementAddress };

        // A tenant's request is answered on the API listener, and counted.
        (await api.PostAsync("v1/chat/completions", TestGateway.Json("""{"model":"llama3-8b","messages":[{"role":"user","content":"hi"}]}"""))).EnsureSuccessStatusCode();

        // The API listener does not show the fleet's figures, even to a valid key and with a forged Host header.
        foreach (string path in new[] { "metrics", "status" })
        {
            using var req = new HttpRequestMessage(HttpMethod.Get, path);
            req.Headers.Host = $"127.0.0.1:{_gw.ManagementAddress.Port}";
            using var resp = await api.SendAsync(req);
            Assert.Equal(HttpStatusCode.NotFound, resp.StatusCode);
            Assert.Contains("\"error\"", await resp.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        // The operator listener does, and serves nothing of the API.
        string metrics = await ops.GetStringAsync("metrics");
        Assert.Contains("gateway_requests_total", metrics, StringComparison.Ordinal);
        Assert.Contains("<title>LLM gateway status</title>", await ops.GetStringAsync("status"), StringComparison.Ordinal);
        using var chat = await ops.PostAsync("v1/chat/completions", TestGateway.Json("""{"model":"llama3-8b","messages":[{"role":"user","content":"hi"}]}"""));
        Assert.Equal(HttpStatusCode.NotFound, chat.StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await ops.GetAsync("v1/models")).StatusCode);

        // Probes answer on both.
        Assert.Equal(HttpStatusCode.OK, (await api.GetAsync("healthz")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await ops.GetAsync("healthz")).StatusCode);
    }

    [Fact]
    public void ManagementListen_SamePortAsTheApi_IsRejectedAtStartUp()
    {
        var e = Assert.Throws<Microsoft.Extensions.Options.OptionsValidationException>(() => Gateway.Hosting.GatewayHost.Build([], new Dictionary<string, string?>
        {
            ["Gateway:Listen"] = "http://127.0.0.1:18080",
            ["Gateway:ManagementListen"] = "http://127.0.0.1:18080",
        }));
        Assert.Contains("ManagementListen", e.Message, StringComparison.Ordinal);
    }
}
