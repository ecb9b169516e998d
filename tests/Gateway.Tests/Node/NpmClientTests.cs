using System.Diagnostics;
using System.Text.Json;
using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.Node;

/// <summary>
/// The `openai` npm client against the gateway. Needs node + npm (the package is installed once into a cache folder
/// under the temp directory with `npm install openai`); the test fails, rather than passing silently, without them.
/// </summary>
public sealed class NpmClientTests
{
    private static readonly SemaphoreSlim InstallLock = new(1, 1);

    [Fact]
    public async Task OpenAiNpmClient_ModelsChatStreamAndBadKey_WorkUnchanged()
    {
        string module = await EnsureOpenAiModuleAsync();
        await using var w = await FakeWorker.StartAsync();
        await using var gw = await TestGateway.StartAsync([w.Url]);
        string script = Path.Combine(AppContext.BaseDirectory, "Node", "openai-client.mjs");
        var (code, stdout, stderr) = await RunAsync("node", [script, new Uri(gw.BaseAddress, "v1").ToString(), TestGateway.DemoKey], new() { ["OPENAI_MODULE"] = module }, TimeSpan.FromSeconds(60));
        Assert.True(code == 0, stderr);
        using var doc = JsonDocument.Parse(stdout.Trim().Split('\n')[^1]);
        var r = doc.RootElement;
        Assert.Equal("llama3-8b", r.GetProperty("models")[0].GetString());
        Assert.Equal("Hello from fake", r.GetProperty("chat").GetString());
        Assert.Equal(10, r.GetProperty("usage").GetInt32());
        Assert.Equal("tok0 tok1 tok2 tok3 tok4 ", r.GetProperty("stream").GetString());
        Assert.Equal(5, r.GetProperty("chunks").GetInt32()); // no usage-only chunk leaked to a client that did not ask
        Assert.Equal("401:invalid_api_key", r.GetProperty("badKey").GetString());
    }

    private static async Task<string> EnsureOpenAiModuleAsync()
    {
        string dir = Path.Combine(Path.GetTempPath(), "gateway-tests-npm");
        string entry = Path.Combine(dir, "node_modules", "openai", "index.mjs");
        await InstallLock.WaitAsync();
        try
        {
            if (!File.Exists(entry))
            {
                Directory.CreateDirectory(dir);
                var (code, _, err) = await RunAsync("npm", ["install", "--prefix", dir, "--no-audit", "--no-fund", "openai"], new(), TimeSpan.FromSeconds(240));
                Assert.True(code == 0 && File.Exists(entry), "npm install openai failed: " + err);
            }
        }
        finally
        {
            InstallLock.Release();
        }

        return new Uri(entry).AbsoluteUri;
    }

    internal static async Task<(int Code, string Stdout, string Stderr)> RunAsync(string file, string[] args, Dictionary<string, string> env, TimeSpan timeout, string? workingDirectory = null)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false };
        if (workingDirectory is not null)
        {
            psi.WorkingDirectory = workingDirectory;
        }

        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        foreach (var (k, v) in env)
        {
            psi.Environment[k] = v;
        }

        using var p = Process.Start(psi)!;
        p.StandardInput.Close(); // a CLI in print mode must not wait for input
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await p.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"{file} did not finish within {timeout}");
        }

        return (p.ExitCode, await stdout, await stderr);
    }
}
