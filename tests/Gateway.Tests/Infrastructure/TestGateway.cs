using System.Net.Http.Headers;
using Gateway.Hosting;

namespace Gateway.Tests.Infrastructure;

/// <summary>Starts a gateway on 127.0.0.1:0 in front of the given workers (static discovery).</summary>
public static class TestGateway
{
    public const string DemoKey = "sk-demo-local-0000";
    public const string Secret = "test-secret";

    public static Task<GatewayHost> StartAsync(IEnumerable<string> workerUrls, IDictionary<string, string?>? extra = null, bool waitForReady = true,
        Action<Microsoft.Extensions.DependencyInjection.IServiceCollection>? configureServices = null)
    {
        var settings = new Dictionary<string, string?>
        {
            ["Gateway:Listen"] = "http://127.0.0.1:0",
            ["Gateway:Workers:Mode"] = "Static",
            ["Gateway:Auth:ServerSecret"] = Secret,
            ["Gateway:Health:Interval"] = "00:00:00.200",
            ["Gateway:Resilience:RetryBaseDelay"] = "00:00:00.010",
            ["Logging:LogLevel:Default"] = "Warning",
            ["Logging:LogLevel:Gateway"] = "Warning",
        };
        int i = 0;
        foreach (var u in workerUrls)
        {
            settings[$"Gateway:Workers:Urls:{i++}"] = u;
        }

        if (extra is not null)
        {
            foreach (var (k, v) in extra)
            {
                settings[k] = v;
            }
        }

        return GatewayHost.StartAsync(settings, configureServices, waitForReady: waitForReady);
    }

    /// <summary>Starts a gateway over 4 embedded reference workers with one API key per (key, tenant path) pair.</summary>
    public static Task<GatewayHost> StartEmbeddedAsync(IEnumerable<(string Key, string Tenant)> keys, IDictionary<string, string?>? extra = null)
    {
        var settings = new Dictionary<string, string?>
        {
            ["Gateway:Listen"] = "http://127.0.0.1:0",
            ["Gateway:Workers:Mode"] = "Embedded",
            ["Gateway:Workers:Embedded:Count"] = "4",
            ["Gateway:Workers:Embedded:TimeScale"] = "0.02",
            ["Gateway:Health:Interval"] = "00:00:00.200",
            ["Gateway:Auth:ServerSecret"] = Secret,
            ["Logging:LogLevel:Default"] = "Warning",
        };
        foreach (var (k, v) in KeySettings([.. keys]).Concat(extra ?? new Dictionary<string, string?>()))
        {
            settings[k] = v;
        }

        return GatewayHost.StartAsync(settings);
    }

    /// <summary>Settings for API keys: the i-th pair becomes <c>Gateway:Auth:Keys:i</c> (its hash and tenant path).</summary>
    public static Dictionary<string, string?> KeySettings(params (string Key, string Tenant)[] keys)
    {
        var settings = new Dictionary<string, string?>();
        for (int i = 0; i < keys.Length; i++)
        {
            settings[$"Gateway:Auth:Keys:{i}:Hash"] = Gateway.Auth.ApiKeyAuthenticator.HashKey(Secret, keys[i].Key);
            settings[$"Gateway:Auth:Keys:{i}:Tenant"] = keys[i].Tenant;
        }

        return settings;
    }

    public static HttpClient Client(GatewayHost host, string? key = DemoKey)
    {
        // An outside caller: this process's HttpClient tracing (the gateway's OpenTelemetry HttpClient instrumentation
        // listens process-wide) must not replace the traceparent a test sends with one of its own.
        var c = new HttpClient(new SocketsHttpHandler { ActivityHeadersPropagator = null })
        {
            BaseAddress = host.BaseAddress,
            Timeout = TimeSpan.FromSeconds(30),
        };
        if (key is not null)
        {
            c.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        }

        return c;
    }

    public static StringContent Json(string json) => new(json, System.Text.Encoding.UTF8, "application/json");
}
