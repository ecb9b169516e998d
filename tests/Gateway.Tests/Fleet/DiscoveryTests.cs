using System.Net;
using Gateway.Configuration;
using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.Fleet;

public sealed class DiscoveryTests
{
    [Fact]
    public async Task DnsMode_ResolvesHostToWorkers_RequestSucceeds()
    {
        await using var w = await FakeWorker.StartAsync();
        await using var gw = await Gateway.Hosting.GatewayHost.StartAsync(new Dictionary<string, string?>
        {
            ["Gateway:Listen"] = "http://127.0.0.1:0",
            ["Gateway:Workers:Mode"] = "Dns",
            ["Gateway:Workers:Dns:Host"] = "localhost",
            ["Gateway:Workers:Dns:Port"] = w.BaseAddress.Port.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["Gateway:Health:Interval"] = "00:00:00.200",
            ["Logging:LogLevel:Default"] = "Warning",
        });
        Assert.Contains(gw.Workers.All, e => e.Prefix == $"http://127.0.0.1:{w.BaseAddress.Port}");
        using var http = TestGateway.Client(gw);
        var resp = await http.PostAsync("v1/chat/completions", TestGateway.Json("{\"model\":\"llama3-8b\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"));
        Assert.Equal(HttpStatusCode.OK, resp.StatusCode);
    }

    [Fact]
    public async Task HealthProber_WorkerState_UpdatesReportedLoad()
    {
        await using var w = await FakeWorker.StartAsync();
        await using var gw = await TestGateway.StartAsync([w.Url]);
        var info = gw.Workers.All[0].Info;
        Assert.Equal(1000, info.KvBlocksTotal);
        Assert.Equal(0.01, info.KvUsage, 3);
        Assert.Equal(990, info.KvBlocksFree); // memory-aware placement reads it
        Assert.Equal(12.5, info.KvEvictionAgeSeconds); // retention's eviction-age pricing reads it
        Assert.Equal(20000.0, info.PrefillTokensPerSecond);
        Assert.True(info.PublishesKvEvents);
    }

    [Fact]
    public void Yaml_Flattened_BindsLikeJson()
    {
        var data = YamlConfigurationExtensions.FlattenYaml("""
            Gateway:
              Workers:
                Mode: Static
                Urls:
                  - http://10.0.0.1:8000
                  - http://10.0.0.2:8000
              Routing:
                Policy: round-robin
            """);
        Assert.Equal("Static", data["Gateway:Workers:Mode"]);
        Assert.Equal("http://10.0.0.2:8000", data["Gateway:Workers:Urls:1"]);
        Assert.Equal("round-robin", data["Gateway:Routing:Policy"]);
    }

    [Fact]
    public void Validator_CollectsEveryError()
    {
        var o = new GatewayOptions
        {
            Listen = "ftp://x",
            Workers = new WorkersOptions { Mode = WorkerDiscoveryMode.Static },
            Routing = new RoutingOptions { Policy = "nope" },
        };
        o.Auth.Keys.Add(new ApiKeyOptions { Hash = "xyz", Tenant = "a/b" });
        var result = new GatewayOptionsValidator().Validate(null, o);
        Assert.True(result.Failed);
        Assert.True(result.Failures!.Count() >= 5, string.Join("\n", result.Failures!));
    }

    [Fact]
    public void Validator_AcceptsKnownTokenizersAndRejectsUnknownOnes()
    {
        var ok = new GatewayOptions { Routing = new RoutingOptions { Tokenizer = "default" } };
        ok.Routing.ModelTokenizers["tiny"] = "bytes";
        Assert.DoesNotContain(new GatewayOptionsValidator().Validate(null, ok).Failures ?? [], f => f.Contains("Tokenizer", StringComparison.Ordinal));

        var bad = new GatewayOptions { Routing = new RoutingOptions { Tokenizer = "sentencepiece" } };
        bad.Routing.ModelTokenizers["tiny"] = "/nonexistent/tokenizer.json";
        var failures = new GatewayOptionsValidator().Validate(null, bad).Failures!.ToList();
        Assert.Contains(failures, f => f.Contains("Gateway:Routing:Tokenizer 'sentencepiece'", StringComparison.Ordinal));
        Assert.Contains(failures, f => f.Contains("Gateway:Routing:ModelTokenizers:tiny", StringComparison.Ordinal));
    }
}
