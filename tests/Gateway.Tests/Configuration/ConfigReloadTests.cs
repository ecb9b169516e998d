using System.Net;
using Gateway.Auth;
using Gateway.Configuration;
using Gateway.Scheduling;
using Gateway.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Worker;

namespace Gateway.Tests.Configuration;

/// <summary>
/// The YAML configuration file is watched: a new tenant tree and new keys apply in place, requests in flight finish,
/// and a bad file (unparsable, or an invalid tree) changes nothing.
/// </summary>
public sealed class ConfigReloadTests : IDisposable
{
    private const string KeyA = "sk-reload-a";
    private const string KeyNew = "sk-reload-new";
    private readonly string _dir = Directory.CreateTempSubdirectory("gw-reload-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task TenantTreeAndKeys_FileChanged_AppliedInPlace_InFlightStreamFinishes_BadFilesKeepThePrevious()
    {
        string file = Path.Combine(_dir, "gateway.yaml");
        Write(file, Yaml(weightA: 1, withNewKey: false));
        await using var worker = await WorkerHost.StartAsync(new WorkerOptions { TimeScale = 1 });
        await using var gw = await global::Gateway.Hosting.GatewayHost.StartAsync(new Dictionary<string, string?>
        {
            ["Gateway:Listen"] = "http://127.0.0.1:0",
            ["Gateway:Workers:Mode"] = "Static",
            ["Gateway:Workers:Urls:0"] = worker.BaseAddress.ToString(),
            ["Gateway:Auth:ServerSecret"] = TestGateway.Secret,
            ["Gateway:Health:Interval"] = "00:00:00.200",
            ["Logging:LogLevel:Default"] = "Warning",
        }, configFile: file);
        var scheduling = gw.Services.GetRequiredService<GatewayScheduling>();
        var reloader = gw.Services.GetRequiredService<ConfigReloader>();
        Assert.Equal(1, scheduling.Tree.Find("a")!.Weight);
        using var a = TestGateway.Client(gw, KeyA);
        using var stranger = TestGateway.Client(gw, KeyNew);
        Assert.Equal(HttpStatusCode.Unauthorized, (await stranger.PostAsync("v1/chat/completions", Chat(false))).StatusCode);
        using var stream = await a.SendAsync(new HttpRequestMessage(HttpMethod.Post, "v1/chat/completions") { Content = Chat(true) },
            HttpCompletionOption.ResponseHeadersRead);

        Write(file, Yaml(weightA: 3, withNewKey: true));
        Assert.True(await Eventually(() => reloader.Applied >= 1), "the change was never applied");
        Assert.Equal(3, scheduling.Tree.Find("a")!.Weight);
        Assert.NotNull(scheduling.Tree.Find("c/team/new"));
        Assert.Equal(HttpStatusCode.OK, (await stranger.PostAsync("v1/chat/completions", Chat(false))).StatusCode);
        var events = await Sse.ReadAllAsync(stream);
        Assert.Equal("[DONE]", events[^1].Data);

        // Unparsable YAML: the provider keeps the last good values; nothing is applied or refused.
        long applied = reloader.Applied;
        Write(file, "Gateway:\n  Scheduling: [unclosed\n");
        await Task.Delay(1000);
        Assert.Equal(3, scheduling.Tree.Find("a")!.Weight);
        Assert.Equal(HttpStatusCode.OK, (await stranger.PostAsync("v1/chat/completions", Chat(false))).StatusCode);

        // A tree the gateway refuses (two siblings with one name): refused, previous tree and keys kept.
        Write(file, Yaml(weightA: 5, withNewKey: true).Replace("      - { Name: b, Weight: 1 }", "      - { Name: a, Weight: 1 }", StringComparison.Ordinal));
        Assert.True(await Eventually(() => reloader.Rejected >= 1), "the invalid tree was not refused");
        Assert.Equal(applied, reloader.Applied);
        Assert.NotNull(reloader.LastError);
        Assert.Equal(3, scheduling.Tree.Find("a")!.Weight);
        Assert.Equal(HttpStatusCode.OK, (await a.PostAsync("v1/chat/completions", Chat(false))).StatusCode);
    }

    private static StringContent Chat(bool stream) => TestGateway.Json(
        $$"""{"model":"llama3-8b","stream":{{(stream ? "true" : "false")}},"max_tokens":{{(stream ? 300 : 2)}},"messages":[{"role":"user","content":"reload"}]}""");

    private static string Yaml(double weightA, bool withNewKey)
    {
        var lines = new List<string>
        {
            "Gateway:",
            "  Auth:",
            "    Keys:",
            $"      - {{ Hash: {ApiKeyAuthenticator.HashKey(TestGateway.Secret, KeyA)}, Tenant: a/team/key }}",
        };
        if (withNewKey)
        {
            lines.Add($"      - {{ Hash: {ApiKeyAuthenticator.HashKey(TestGateway.Secret, KeyNew)}, Tenant: c/team/new }}");
        }

        lines.AddRange(
        [
            "  Scheduling:",
            "    Tenants:",
            $"      - {{ Name: a, Weight: {weightA.ToString(System.Globalization.CultureInfo.InvariantCulture)} }}",
            "      - { Name: b, Weight: 1 }",
        ]);
        return string.Join('\n', lines) + "\n";
    }

    /// <summary>Replaces the file in one rename, as the kubelet does, so the watcher never reads half a file.</summary>
    private static void Write(string path, string text)
    {
        string tmp = path + ".tmp";
        File.WriteAllText(tmp, text);
        File.Move(tmp, path, overwrite: true);
    }

    private static async Task<bool> Eventually(Func<bool> condition)
    {
        for (int i = 0; i < 200 && !condition(); i++)
        {
            await Task.Delay(50);
        }

        return condition();
    }
}
