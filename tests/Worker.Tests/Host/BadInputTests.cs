using System.Text;
using System.Text.Json;

namespace Worker.Tests.Host;

/// <summary>Bad requests get OpenAI-shaped errors with the right status, and the worker keeps serving.</summary>
public sealed class BadInputTests : IAsyncLifetime
{
    private WorkerHost _host = null!;

    public async Task InitializeAsync() =>
        _host = await TestWorkers.StartAsync(maxModelLength: 2048, maxBodyBytes: 64 * 1024);

    public async Task DisposeAsync() => await _host.DisposeAsync();

    public static TheoryData<string, string, int, string?, string?> Cases => new()
    {
        // path, body, status, param, code
        { "/v1/chat/completions", "{not json", 400, null, "invalid_json" },
        { "/v1/chat/completions", "", 400, null, "invalid_json" },
        { "/v1/chat/completions", "[1,2]", 400, null, null },
        { "/v1/chat/completions", """{"messages":[{"role":"user","content":"x"}]}""", 400, "model", "missing_required_parameter" },
        { "/v1/chat/completions", """{"model":"llama3-8b"}""", 400, "messages", "missing_required_parameter" },
        { "/v1/chat/completions", """{"model":"llama3-8b","messages":"hi"}""", 400, "messages", null },
        { "/v1/chat/completions", """{"model":"llama3-8b","messages":[]}""", 400, "messages", null },
        { "/v1/chat/completions", """{"model":"llama3-8b","messages":[{"role":"wizard","content":"x"}]}""", 400, "messages[0].role", null },
        { "/v1/chat/completions", """{"model":42,"messages":[{"role":"user","content":"x"}]}""", 400, "model", null },
        { "/v1/chat/completions", """{"model":"llama3-8b","messages":[{"role":"user","content":"x"}],"max_tokens":-5}""", 400, "max_tokens", null },
        { "/v1/chat/completions", """{"model":"llama3-8b","messages":[{"role":"user","content":"x"}],"max_tokens":0}""", 400, "max_tokens", null },
        { "/v1/chat/completions", """{"model":"llama3-8b","messages":[{"role":"user","content":"x"}],"max_tokens":"ten"}""", 400, "max_tokens", null },
        { "/v1/chat/completions", """{"model":"llama3-8b","messages":[{"role":"user","content":"x"}],"max_tokens":99999999999}""", 400, "max_tokens", null },
        { "/v1/chat/completions", """{"model":"llama3-8b","messages":[{"role":"user","content":"x"}],"max_tokens":1000000}""", 400, "max_tokens", "context_length_exceeded" },
        { "/v1/chat/completions", """{"model":"llama3-8b","messages":[{"role":"user","content":"x"}],"n":2}""", 400, "n", null },
        { "/v1/chat/completions", """{"model":"llama3-8b","messages":[{"role":"user","content":"x"}],"stream":"yes"}""", 400, "stream", null },
        { "/v1/chat/completions", """{"model":"llama3-8b","messages":[{"role":"user","content":"x"}],"stop":5}""", 400, "stop", null },
        { "/v1/chat/completions", """{"model":"llama3-8b","messages":[{"role":"user","content":"x"}],"cache_salt":7}""", 400, "cache_salt", null },
        { "/v1/chat/completions", """{"model":"llama3-8b","messages":[{"role":"user","content":"x"}],"tools":{}}""", 400, "tools", null },
        { "/v1/chat/completions", """{"model":"llama3-8b","messages":[{"role":"user","content":"x"}],"tool_choice":"required"}""", 400, "tool_choice", null },
        { "/v1/chat/completions", """{"model":"gpt-4o","messages":[{"role":"user","content":"x"}]}""", 404, "model", "model_not_found" },
        { "/v1/completions", """{"model":"llama3-8b"}""", 400, "prompt", "missing_required_parameter" },
        { "/v1/completions", """{"model":"llama3-8b","prompt":["a","b"]}""", 400, "prompt", null },
        { "/v1/embeddings", """{"model":"llama3-8b","input":[1,2]}""", 400, "input", null },
        { "/v1/embeddings", """{"model":"llama3-8b","input":"x","encoding_format":"int8"}""", 400, "encoding_format", null },
        { "/v1/embeddings", """{"model":"llama3-8b","input":"x","dimensions":0}""", 400, "dimensions", null },
        { "/v1/embeddings", """{"model":"nope","input":"x"}""", 404, "model", "model_not_found" },
        { "/v1/embeddings", """{"model":"llama3-8b","input":["a","b","c","d","e","f","g","h","i","j","k","l","m","n","o","p","q","r","s","t","u","v","w","x","y","z","aa","bb","cc","dd","ee","ff","gg","hh","ii","jj","kk","ll","mm","nn","oo","pp","qq","rr","ss","tt","uu","vv","ww","xx","yy","zz","a1","b1","c1","d1","e1","f1","g1","h1","i1","j1","k1","l1","m1","n1"],"dimensions":65536}""", 400, "input", null },
        { "/worker/kv/retain", """{"ttl_ms":1000}""", 400, "session_id", "missing_required_parameter" },
        { "/worker/kv/retain", """{"session_id":"s"}""", 400, "ttl_ms", "missing_required_parameter" },
        { "/worker/kv/retain", """{"session_id":"s","ttl_ms":-1}""", 400, "ttl_ms", null },
        { "/worker/kv/retain", """{"block_hashes":[-3],"ttl_ms":10}""", 400, "block_hashes", null },
        { "/worker/kv/release", """{"block_hashes":"x"}""", 400, "block_hashes", null },
        { "/worker/kv/release", "nope", 400, null, "invalid_json" },
        // valid JSON grammar that is not text: a lone UTF-16 surrogate escape, wherever it sits
        { "/v1/chat/completions", """{"model":"llama3-8b","messages":[{"role":"user","content":"\ud800"}]}""", 400, "messages", "invalid_json" },
        { "/v1/chat/completions", """{"model":"llama3-8b","messages":[{"role":"user","content":"x"}],"cache_salt":"\udfff"}""", 400, "cache_salt", "invalid_json" },
        { "/v1/chat/completions", """{"model":"llama3-8b","messages":[{"role":"user","content":"x"}],"tool_choice":"auto","tools":[{"type":"function","function":{"name":"f","parameters":{"type":"\ud83d"}}}]}""", 400, "tools", "invalid_json" },
        { "/v1/completions", """{"model":"llama3-8b","prompt":"\ud800"}""", 400, "prompt", "invalid_json" },
        { "/v1/embeddings", """{"model":"llama3-8b","input":"x","encoding_format":"\ud800"}""", 400, "encoding_format", "invalid_json" },
        { "/worker/kv/retain", """{"session_id":"\ud800","ttl_ms":10}""", 400, "session_id", "invalid_json" },
    };

    [Fact]
    public async Task BytesThatAreNotUtf8_400InvalidJson()
    {
        using var http = TestWorkers.Http(_host);
        byte[] body = [.. "{\"model\":\"llama3-8b\",\"messages\":[{\"role\":\"user\",\"content\":\"a"u8, 0xED, 0xA0, 0x80, .. "\"}]}"u8];
        using var content = new ByteArrayContent(body);
        content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
        using var resp = await http.PostAsync("/v1/chat/completions", content);
        Assert.Equal(400, (int)resp.StatusCode);
        AssertErrorShape(await resp.Content.ReadAsStringAsync(), "messages", "invalid_json");
        await AssertStillServingAsync(http);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task BadBody_OpenAiShapedError(string path, string body, int status, string? param, string? code)
    {
        using var http = TestWorkers.Http(_host);
        using var resp = await http.PostAsync(path, new StringContent(body, Encoding.UTF8, "application/json"));
        Assert.Equal(status, (int)resp.StatusCode);
        AssertErrorShape(await resp.Content.ReadAsStringAsync(), param, code);
        await AssertStillServingAsync(http);
    }

    [Fact]
    public async Task PromptOverContext_400ContextLengthExceeded()
    {
        using var http = TestWorkers.Http(_host);
        string body = TestWorkers.ChatBody(TestWorkers.Text(3000, "huge"), 4);
        var (status, json) = await TestWorkers.PostJsonAsync(http, "/v1/chat/completions", body);
        Assert.Equal(400, status);
        Assert.Equal("context_length_exceeded", json.GetProperty("error").GetProperty("code").GetString());
        Assert.Contains("maximum context length is 2048", json.GetProperty("error").GetProperty("message").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task PromptPlusMaxTokensOverContext_400_ButWithoutMaxTokensTheDrawIsCapped()
    {
        using var http = TestWorkers.Http(_host);
        int words = 100;
        while (TestWorkers.PromptTokensOf(TestWorkers.ChatBody(TestWorkers.Text(words + 10, "near"), 1)) < 2000)
        {
            words += 10;
        }

        string prompt = TestWorkers.Text(words, "near"); // just under 2000 tokens of a 2048 context
        Assert.InRange(TestWorkers.PromptTokensOf(TestWorkers.ChatBody(prompt, 1)), 1900, 2000);
        var (status, json) = await TestWorkers.PostJsonAsync(http, "/v1/chat/completions", TestWorkers.ChatBody(prompt, 500));
        Assert.Equal(400, status);
        Assert.Equal("context_length_exceeded", json.GetProperty("error").GetProperty("code").GetString());

        var (ok, capped) = await TestWorkers.PostJsonAsync(http, "/v1/chat/completions", TestWorkers.ChatBody(prompt, null));
        Assert.Equal(200, ok);
        var usage = capped.GetProperty("usage");
        Assert.True(usage.GetProperty("total_tokens").GetInt32() <= 2048);
    }

    [Fact]
    public async Task BodyOverLimit_413()
    {
        using var http = TestWorkers.Http(_host);
        string big = TestWorkers.ChatBody(new string('a', 100 * 1024), 1);
        using var resp = await http.PostAsync("/v1/chat/completions", new StringContent(big, Encoding.UTF8, "application/json"));
        Assert.Equal(413, (int)resp.StatusCode);
        AssertErrorShape(await resp.Content.ReadAsStringAsync(), null, "request_too_large");

        // Chunked (no Content-Length): the limit still holds.
        using var chunked = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
        {
            Content = new StreamContent(new MemoryStream(Encoding.UTF8.GetBytes(big))),
        };
        chunked.Headers.TransferEncodingChunked = true;
        using var resp2 = await http.SendAsync(chunked);
        Assert.Equal(413, (int)resp2.StatusCode);
        await AssertStillServingAsync(http);
    }

    [Fact]
    public async Task WrongMethod_405_UnknownRoute_404_BadHeader_400()
    {
        using var http = TestWorkers.Http(_host);
        using (var resp = await http.GetAsync("/v1/chat/completions"))
        {
            Assert.Equal(405, (int)resp.StatusCode);
            AssertErrorShape(await resp.Content.ReadAsStringAsync(), null, "method_not_allowed");
        }

        using (var resp = await http.PostAsync("/v1/nothing-here", new StringContent("{}")))
        {
            Assert.Equal(404, (int)resp.StatusCode);
            AssertErrorShape(await resp.Content.ReadAsStringAsync(), null, "unknown_url");
        }

        var (status, json) = await TestWorkers.PostJsonAsync(http, "/v1/chat/completions", TestWorkers.ChatBody("x", 1), ("x-retention-ttl-ms", "soon"));
        Assert.Equal(400, status);
        Assert.Equal("x-retention-ttl-ms", json.GetProperty("error").GetProperty("param").GetString());

        foreach (var bad in new[] { "high", "1001", "-1001", "1.5" })
        {
            var (ps, pj) = await TestWorkers.PostJsonAsync(http, "/v1/chat/completions", TestWorkers.ChatBody("x", 1), ("x-request-priority", bad));
            Assert.Equal(400, ps);
            Assert.Equal("x-request-priority", pj.GetProperty("error").GetProperty("param").GetString());
        }

        using (var resp = await http.GetAsync("/worker/kv/events?after=-4"))
        {
            Assert.Equal(400, (int)resp.StatusCode);
        }
    }

    private static void AssertErrorShape(string text, string? param, string? code)
    {
        var root = JsonDocument.Parse(text).RootElement;
        var err = root.GetProperty("error");
        Assert.False(string.IsNullOrEmpty(err.GetProperty("message").GetString()));
        Assert.False(string.IsNullOrEmpty(err.GetProperty("type").GetString()));
        Assert.True(err.TryGetProperty("param", out var p));
        Assert.True(err.TryGetProperty("code", out var c));
        if (param is not null)
        {
            Assert.Equal(param, p.GetString());
        }

        if (code is not null)
        {
            Assert.Equal(code, c.GetString());
        }
    }

    private static async Task AssertStillServingAsync(HttpClient http)
    {
        var (status, _) = await TestWorkers.PostJsonAsync(http, "/v1/chat/completions", TestWorkers.ChatBody("still alive?", 1));
        Assert.Equal(200, status);
    }
}
