using System.Diagnostics;
using System.Text.Json;
using Worker;

namespace Gateway.Tests.Proxy;

/// <summary>What the fault-injection tests share: request bodies, reference workers and reading a worker's state.</summary>
internal static class FaultKit
{
    /// <summary>Longest any step may take before the test calls it a hang.</summary>
    public static readonly TimeSpan NoHang = TimeSpan.FromSeconds(60);

    /// <summary>A prompt whose prefill takes the modelled engine a noticeable time (≈ 24k tokens).</summary>
    public static readonly string LongPrompt = string.Join(' ', Enumerable.Range(0, 24_000).Select(i => "w" + (i % 97)));

    /// <summary>A streamed chat request.</summary>
    public static string Body(string prompt, int maxTokens) => JsonSerializer.Serialize(new
    {
        model = "llama3-8b",
        stream = true,
        max_tokens = maxTokens,
        messages = new[] { new { role = "user", content = prompt } },
    });

    /// <summary>An in-process reference worker on a loopback port.</summary>
    public static Task<WorkerHost> StartWorkerAsync(double timeScale) => WorkerHost.StartAsync(new WorkerOptions
    {
        Url = "http://127.0.0.1:0",
        Profile = "h100-llama3-8b",
        TimeScale = timeScale,
        KvBlocks = 8192,
        MaxModelLength = 131072,
        Seed = 7,
    });

    /// <summary>Gateway settings: round-robin routing plus <paramref name="extra"/>.</summary>
    public static Dictionary<string, string?> Settings(params (string Key, string Value)[] extra)
    {
        var d = new Dictionary<string, string?> { ["Gateway:Routing:Policy"] = "round-robin" };
        foreach (var (k, v) in extra)
        {
            d[k] = v;
        }

        return d;
    }

    /// <summary>KV blocks used, requests running and waiting on the worker at <paramref name="worker"/> (its /worker/state).</summary>
    public static async Task<(int Used, int Running, int Waiting)> StateAsync(HttpClient http, Uri worker)
    {
        using var doc = JsonDocument.Parse(await http.GetStringAsync(new Uri(worker, "worker/state")));
        var r = doc.RootElement;
        return (r.GetProperty("kv_blocks_used").GetInt32(), r.GetProperty("running_requests").GetInt32(), r.GetProperty("waiting_requests").GetInt32());
    }

    /// <summary>The first of <paramref name="workers"/> seen holding a request (polled every 10 ms, 15 s at most).</summary>
    public static async Task<Uri> WaitBusyAsync(HttpClient http, params Uri[] workers)
    {
        for (int i = 0; i < 1500; i++)
        {
            foreach (var w in workers)
            {
                var (used, running, waiting) = await StateAsync(http, w);
                if (used > 0 || running + waiting > 0)
                {
                    return w;
                }
            }

            await Task.Delay(10);
        }

        throw new TimeoutException("no worker took the request");
    }

    /// <summary>Time from now until the worker holds no KV block and no request.</summary>
    public static async Task<TimeSpan> TimeUntilFreedAsync(HttpClient http, Uri w, TimeSpan? limit = null)
    {
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < (limit ?? TimeSpan.FromSeconds(15)))
        {
            if (await StateAsync(http, w) is (0, 0, 0))
            {
                return sw.Elapsed;
            }

            await Task.Delay(10);
        }

        return sw.Elapsed;
    }

}
