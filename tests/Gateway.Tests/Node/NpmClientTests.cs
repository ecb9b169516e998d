using System.Diagnostics;
using System.Text.Json;
using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.Node;

/// <summary>
/// The official npm clients against the gateway: `openai` (chat completions and <c>responses.create</c>) and
/// `@anthropic-ai/sdk` (messages), each streaming and with tools. Needs node + npm (each package is installed once into
/// a cache folder under the temp directory with `npm install`); the tests fail, rather than passing silently, without them.
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

    [Fact]
    public async Task AnthropicNpmClient_ToolUseThenResult_StreamedTextAndToolInput_BadKey()
    {
        string module = await EnsureModuleAsync("gateway-tests-npm-anthropic", "@anthropic-ai/sdk", Path.Combine("@anthropic-ai", "sdk", "index.mjs"));
        await using var w = await FakeWorker.StartAsync();
        await using var gw = await TestGateway.StartAsync([w.Url]);
        string script = Path.Combine(AppContext.BaseDirectory, "Node", "anthropic-client.mjs");
        var (code, stdout, stderr) = await RunAsync("node", [script, gw.BaseAddress.ToString().TrimEnd('/'), TestGateway.DemoKey], new() { ["ANTHROPIC_MODULE"] = module }, TimeSpan.FromSeconds(60));
        Assert.True(code == 0, stderr);
        var r = JsonDocument.Parse(stdout.Trim().Split('\n')[^1]).RootElement;
        Assert.Equal("tool_use", r.GetProperty("stopReason").GetString());
        Assert.Equal("lookup", r.GetProperty("toolName").GetString());
        Assert.Equal("x", r.GetProperty("toolInput").GetProperty("q").GetString());
        Assert.Equal("Hello from fake", r.GetProperty("answer").GetString());
        Assert.Equal("tok0 tok1 tok2 tok3 tok4 ", r.GetProperty("streamText").GetString());
        Assert.Equal("end_turn", r.GetProperty("streamStop").GetString());
        Assert.Equal(["content_block_delta", "content_block_start", "content_block_stop", "message_delta", "message_start", "message_stop"],
            r.GetProperty("streamEvents").EnumerateArray().Select(e => e.GetString()));
        Assert.Equal("lookup", r.GetProperty("streamToolName").GetString());
        Assert.Equal("x", r.GetProperty("streamToolInput").GetProperty("q").GetString());
        Assert.Equal("tool_use", r.GetProperty("streamToolStop").GetString());
        Assert.Equal("401:authentication_error", r.GetProperty("badKey").GetString());
        var toolResultTurn = JsonDocument.Parse(w.Requests.ToArray()[1].Body).RootElement.GetProperty("messages");
        Assert.Equal("tool", toolResultTurn[toolResultTurn.GetArrayLength() - 1].GetProperty("role").GetString()); // the tool_result reached the worker as a tool message
    }

    [Fact]
    public async Task OpenAiNpmClient_ResponsesCreate_FunctionCallChainedAndStreamed()
    {
        string module = await EnsureOpenAiModuleAsync();
        await using var w = await FakeWorker.StartAsync();
        await using var gw = await TestGateway.StartAsync([w.Url]);
        string script = Path.Combine(AppContext.BaseDirectory, "Node", "openai-responses.mjs");
        var (code, stdout, stderr) = await RunAsync("node", [script, new Uri(gw.BaseAddress, "v1").ToString(), TestGateway.DemoKey], new() { ["OPENAI_MODULE"] = module }, TimeSpan.FromSeconds(60));
        Assert.True(code == 0, stderr);
        var r = JsonDocument.Parse(stdout.Trim().Split('\n')[^1]).RootElement;
        Assert.Equal("lookup", r.GetProperty("callName").GetString());
        Assert.Equal("{\"q\":\"x\"}", r.GetProperty("callArgs").GetString());
        Assert.Equal("Hello from fake", r.GetProperty("answer").GetString());
        Assert.True(r.GetProperty("previous").GetBoolean());
        Assert.True(r.GetProperty("retrieved").GetBoolean());
        Assert.Equal("tok0 tok1 tok2 tok3 tok4 ", r.GetProperty("streamText").GetString());
        Assert.Equal("completed", r.GetProperty("streamStatus").GetString());
        Assert.Contains("response.output_text.delta", r.GetProperty("streamEvents").EnumerateArray().Select(e => e.GetString()));
        Assert.Equal("lookup", r.GetProperty("streamCallName").GetString());
        Assert.Equal("{\"q\":\"x\"}", r.GetProperty("streamCallArgs").GetString());
        var requests = w.Requests.ToArray();
        var chained = JsonDocument.Parse(requests[1].Body).RootElement.GetProperty("messages");
        Assert.Equal(["user", "assistant", "tool"], chained.EnumerateArray().Select(m => m.GetProperty("role").GetString()));
        Assert.Equal(requests[0].Headers["x-session-id"], requests[1].Headers["x-session-id"]); // a chain is one session
    }

    private static Task<string> EnsureOpenAiModuleAsync() => EnsureModuleAsync("gateway-tests-npm", "openai", Path.Combine("openai", "index.mjs"));

    /// <summary>Installs <paramref name="package"/> once into a cache folder under the temp directory; the file URL of its ES module entry.</summary>
    internal static async Task<string> EnsureModuleAsync(string folder, string package, string entryUnderNodeModules)
    {
        string dir = Path.Combine(Path.GetTempPath(), folder);
        string entry = Path.Combine(dir, "node_modules", entryUnderNodeModules);
        await InstallLock.WaitAsync();
        try
        {
            if (!File.Exists(entry))
            {
                Directory.CreateDirectory(dir);
                var (code, _, err) = await RunAsync("npm", ["install", "--prefix", dir, "--no-audit", "--no-fund", package], new(), TimeSpan.FromSeconds(300));
                Assert.True(code == 0 && File.Exists(entry), $"npm install {package} failed: " + err);
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
