using System.Net;
using System.Text;
using System.Text.Json;
using Worker.Backends;

namespace Worker.Tests.Backends;

/// <summary>The worker's cpu backend end to end: make-model writes a GGUF, --backend cpu serves it over HTTP.</summary>
public sealed class CpuBackendHostTests : IAsyncLifetime
{
    private string _dir = null!;
    private string _model = null!;
    private WorkerHost _host = null!;
    private HttpClient _http = null!;

    public async Task InitializeAsync()
    {
        _dir = Directory.CreateTempSubdirectory("cpu-host").FullName;
        _model = Path.Combine(_dir, "m.gguf");
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int rc = MakeModelCommand.Run(["--out", _model, "--dim", "64", "--layers", "2", "--heads", "4", "--kv-heads", "2", "--hidden", "128", "--vocab", "300", "--seed", "5"], stdout, stderr);
        Assert.True(rc == 0, stderr.ToString());
        var options = WorkerCommandLine.Parse(["--urls", "http://127.0.0.1:0", "--backend", "cpu", "--model", _model, "--threads", "1", "--kv-blocks", "256"], out var errors, out _);
        Assert.Empty(errors);
        _host = await WorkerHost.StartAsync(options);
        _http = new HttpClient { BaseAddress = _host.BaseAddress };
    }

    public async Task DisposeAsync()
    {
        _http.Dispose();
        await _host.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public async Task Serves_the_file_name_as_model_and_reports_a_calibrated_cpu_profile()
    {
        Assert.Equal("m", _host.ServedModel);
        using var state = JsonDocument.Parse(await _http.GetStringAsync("worker/state"));
        var s = state.RootElement;
        Assert.Equal("cpu", s.GetProperty("profile").GetString());
        Assert.Equal(256, s.GetProperty("kv_blocks_total").GetInt32());
        Assert.Equal(4096, s.GetProperty("max_model_len").GetInt32()); // the model's context, not the 131072 default
        Assert.True(s.GetProperty("prefill_tokens_per_second").GetDouble() > 0);
        Assert.True(s.GetProperty("decode_step_seconds").GetDouble() > 0);
    }

    [Fact]
    public async Task Counts_prompt_bytes_and_generated_tokens_and_reports_the_prefix_hit()
    {
        string body = """{"model":"m","prompt":"The quick brown fox jumps over the lazy dog, again and again.","max_tokens":5}""";
        var first = await PostAsync("v1/completions", body);
        var second = await PostAsync("v1/completions", body);
        Assert.Equal(61, first.GetProperty("usage").GetProperty("prompt_tokens").GetInt32()); // 61 UTF-8 bytes
        Assert.InRange(first.GetProperty("usage").GetProperty("completion_tokens").GetInt32(), 1, 5);
        Assert.Equal(0, first.GetProperty("usage").GetProperty("prompt_tokens_details").GetProperty("cached_tokens").GetInt32());
        Assert.Equal(48, second.GetProperty("usage").GetProperty("prompt_tokens_details").GetProperty("cached_tokens").GetInt32()); // 3 full blocks
        Assert.Equal(first.GetProperty("choices")[0].GetProperty("text").GetString(), second.GetProperty("choices")[0].GetProperty("text").GetString());
    }

    [Fact]
    public async Task State_answers_while_a_long_prefill_holds_the_engine()
    {
        string prompt = string.Concat(Enumerable.Repeat("a long prompt keeps the engine busy; ", 60)); // 2,220 bytes, one step
        (await _http.GetAsync("worker/state")).Dispose(); // connection and JIT out of the way, so the step dominates the request
        await PostAsync("v1/completions", """{"model":"m","prompt":"warm up","max_tokens":1}""");
        // On a loaded CI machine the prefill's compute can starve the HTTP handlers so that no read lands while the request
        // is in the engine (the first read is answered before the submit, the next after the step): such a run says
        // nothing either way and is repeated, at most three times. A read that blocked behind the step would never see
        // the request, so that failure still shows.
        var latencies = new List<TimeSpan>();
        bool sawWork = false;
        TimeSpan total = TimeSpan.Zero;
        for (int attempt = 0; attempt < 3 && !sawWork; attempt++)
        {
            latencies.Clear();
            var request = PostAsync("v1/completions", $$"""{"model":"m","prompt":"{{prompt}} {{attempt}}","max_tokens":1}""");
            var sw = System.Diagnostics.Stopwatch.StartNew();
            while (!request.IsCompleted && sw.Elapsed < TimeSpan.FromSeconds(60))
            {
                var t = System.Diagnostics.Stopwatch.StartNew();
                using var state = JsonDocument.Parse(await _http.GetStringAsync("worker/state"));
                latencies.Add(t.Elapsed);
                var s = state.RootElement;
                sawWork |= s.GetProperty("waiting_requests").GetInt32() + s.GetProperty("running_requests").GetInt32() > 0;
            }

            await request;
            total = sw.Elapsed;
        }

        Assert.True(sawWork, "the snapshot taken at submit shows the request");
        // A read that waited behind the one-step prefill would take about the whole request: then only one or two reads fit.
        var median = latencies.Order().ElementAt(latencies.Count / 2);
        Assert.True(latencies.Count >= 3, $"only {latencies.Count} state reads during a {total.TotalMilliseconds:F0} ms request");
        Assert.True(median * 5 < total, $"median state read {median.TotalMilliseconds:F0} ms of a {total.TotalMilliseconds:F0} ms request");
    }

    [Fact]
    public async Task A_stop_sequence_ends_the_text_before_it_streamed_or_not()
    {
        const string prompt = "The quick brown fox jumps over the lazy dog.";
        var full = await PostAsync("v1/completions", $$"""{"model":"m","prompt":"{{prompt}}","max_tokens":40,"temperature":0}""");
        string text = full.GetProperty("choices")[0].GetProperty("text").GetString()!;
        int fullTokens = full.GetProperty("usage").GetProperty("completion_tokens").GetInt32();
        Assert.True(text.Length >= 8, $"the greedy continuation is long enough to cut: '{text}'");
        string stop = text.Substring(4, 2);
        string expected = text[..text.IndexOf(stop, StringComparison.Ordinal)];
        string body = JsonSerializer.Serialize(new { model = "m", prompt, max_tokens = 40, temperature = 0, stop = new[] { "never-generated", stop } });

        var cut = await PostAsync("v1/completions", body);
        Assert.Equal(expected, cut.GetProperty("choices")[0].GetProperty("text").GetString());
        Assert.Equal("stop", cut.GetProperty("choices")[0].GetProperty("finish_reason").GetString());
        Assert.True(cut.GetProperty("usage").GetProperty("completion_tokens").GetInt32() < fullTokens);

        string streamBody = body[..^1] + ""","stream":true}""";
        using var response = await _http.PostAsync("v1/completions", new StringContent(streamBody, Encoding.UTF8, "application/json"));
        string sse = await response.Content.ReadAsStringAsync();
        var streamed = new StringBuilder();
        string? finish = null;
        foreach (string line in sse.Split('\n'))
        {
            if (!line.StartsWith("data: {", StringComparison.Ordinal))
            {
                continue;
            }

            using var chunk = JsonDocument.Parse(line["data: ".Length..]);
            foreach (var choice in chunk.RootElement.GetProperty("choices").EnumerateArray())
            {
                streamed.Append(choice.GetProperty("text").GetString());
                if (choice.GetProperty("finish_reason").ValueKind == JsonValueKind.String)
                {
                    finish = choice.GetProperty("finish_reason").GetString();
                }
            }
        }

        Assert.Equal(expected, streamed.ToString());
        Assert.Equal("stop", finish);
        Assert.EndsWith("data: [DONE]", sse.TrimEnd(), StringComparison.Ordinal);

        // The aborted rest freed its slot: the worker is idle again.
        using var state = JsonDocument.Parse(await _http.GetStringAsync("worker/state"));
        Assert.Equal(0, state.RootElement.GetProperty("running_requests").GetInt32());
    }

    [Theory]
    [InlineData("""{"model":"m","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}]}""", "tools")]
    public async Task Refuses_what_the_cpu_backend_cannot_do_with_an_openai_error(string body, string param)
    {
        string path = body.Contains("messages", StringComparison.Ordinal) ? "v1/chat/completions" : "v1/completions";
        using var response = await _http.PostAsync(path, new StringContent(body, Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        using var doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal(param, doc.RootElement.GetProperty("error").GetProperty("param").GetString());
    }

    [Fact]
    public void Options_require_a_model_file_for_the_cpu_backend()
    {
        WorkerCommandLine.Parse(["--backend", "cpu"], out var e1, out _);
        Assert.Contains(e1, e => e.Contains("--model", StringComparison.Ordinal));
        WorkerCommandLine.Parse(["--backend", "cpu", "--model", Path.Combine(_dir, "missing.gguf")], out var e2, out _);
        Assert.Contains(e2, e => e.Contains("does not exist", StringComparison.Ordinal));
        WorkerCommandLine.Parse(["--backend", "tpu"], out var e3, out _);
        Assert.Contains(e3, e => e.Contains("unknown backend", StringComparison.Ordinal));
        Assert.Equal("roofline", WorkerCommandLine.Parse([], out _, out _).Backend);
    }

    [Fact]
    public void Make_model_reports_bad_arguments()
    {
        var stderr = new StringWriter();
        Assert.Equal(2, MakeModelCommand.Run(["--dim", "0", "--type", "q4"], new StringWriter(), stderr));
        Assert.Contains("--out", stderr.ToString(), StringComparison.Ordinal);
        Assert.Contains("--dim", stderr.ToString(), StringComparison.Ordinal);
        Assert.Contains("--type", stderr.ToString(), StringComparison.Ordinal);
    }

    private async Task<JsonElement> PostAsync(string path, string body)
    {
        using var response = await _http.PostAsync(path, new StringContent(body, Encoding.UTF8, "application/json"));
        string text = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, text);
        return JsonDocument.Parse(text).RootElement.Clone();
    }
}
