using System.Text;
using Llm.Prompt.OpenAi;
using Llm.Prompt.Tokenization;
using OpenAI.Chat;

namespace Worker.Tests.Host;

public sealed class ChatCompletionsTests : IAsyncLifetime
{
    private WorkerHost _host = null!;
    private ChatClient _chat = null!;

    public async Task InitializeAsync()
    {
        _host = await TestWorkers.StartAsync();
        _chat = TestWorkers.Client(_host).GetChatClient(TestWorkers.Model);
    }

    public async Task DisposeAsync() => await _host.DisposeAsync();

    [Fact]
    public async Task CompleteChat_MaxTokens_ReturnsExactlyThatManyTokensWithUsage()
    {
        var messages = new ChatMessage[] { new SystemChatMessage("You are terse."), new UserChatMessage("Describe a river in one line.") };
        ChatCompletion c = await _chat.CompleteChatAsync(messages, new ChatCompletionOptions { MaxOutputTokenCount = 12 });

        Assert.Equal(ChatFinishReason.Length, c.FinishReason);
        Assert.Equal(ChatMessageRole.Assistant, c.Role);
        string text = c.Content[0].Text;
        Assert.False(string.IsNullOrWhiteSpace(text));
        Assert.Equal(12, c.Usage.OutputTokenCount);
        Assert.Equal(12, DefaultTokenizer.Instance.CountTokens(text)); // one token per generated piece, as the gateway counts
        Assert.Equal(c.Usage.InputTokenCount + c.Usage.OutputTokenCount, c.Usage.TotalTokenCount);
        Assert.NotNull(c.Usage.InputTokenDetails);
        Assert.Equal(0, c.Usage.InputTokenDetails.CachedTokenCount); // a fresh worker, a 2-block-short prompt

        // prompt_tokens is what the shared renderer + tokenizer give for this body (what the gateway predicts).
        string body = """{"model":"llama3-8b","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Describe a river in one line."}]}""";
        Assert.True(OpenAiRequestParser.TryParse(Encoding.UTF8.GetBytes(body), OpenAiEndpoint.ChatCompletions, out var parsed, out _));
        Assert.Equal(DefaultTokenizer.Instance.CountTokens(parsed!.PromptText), c.Usage.InputTokenCount);
    }

    [Fact]
    public async Task CompleteChat_SamePromptAndSeed_SameText_OtherSeed_OtherText()
    {
        var msgs = new ChatMessage[] { new UserChatMessage("Tell me about caches.") };
        var a = await _chat.CompleteChatAsync(msgs, new ChatCompletionOptions { MaxOutputTokenCount = 20 });
        var b = await _chat.CompleteChatAsync(msgs, new ChatCompletionOptions { MaxOutputTokenCount = 20 });
#pragma warning disable OPENAI001 // Seed is marked experimental in the client
        var c = await _chat.CompleteChatAsync(msgs, new ChatCompletionOptions { MaxOutputTokenCount = 20, Seed = 12345 });
#pragma warning restore OPENAI001
        Assert.Equal(a.Value.Content[0].Text, b.Value.Content[0].Text);
        Assert.NotEqual(a.Value.Content[0].Text, c.Value.Content[0].Text);
    }

    [Fact]
    public async Task CompleteChat_NoMaxTokens_DrawsLengthFromDistribution_FinishStop()
    {
        var lengths = new List<int>();
        for (int i = 0; i < 6; i++)
        {
            ChatCompletion c = await _chat.CompleteChatAsync([new UserChatMessage($"Question number {i}: what is a block?")]);
            Assert.Equal(ChatFinishReason.Stop, c.FinishReason);
            Assert.InRange(c.Usage.OutputTokenCount, 1, 1024);
            Assert.Equal(c.Usage.OutputTokenCount, DefaultTokenizer.Instance.CountTokens(c.Content[0].Text));
            lengths.Add(c.Usage.OutputTokenCount);
        }

        Assert.True(lengths.Distinct().Count() > 1, "different prompts should draw different lengths");
    }

    [Fact]
    public async Task CompleteChat_StopSequence_TruncatesBeforeIt_FinishStop()
    {
        var msgs = new ChatMessage[] { new UserChatMessage("Write something long.") };
        ChatCompletion full = await _chat.CompleteChatAsync(msgs, new ChatCompletionOptions { MaxOutputTokenCount = 40 });
        string text = full.Content[0].Text;
        string[] words = text.Split(' ');
        string stop = " " + words[words.Length / 2];
        int expectedCut = text.IndexOf(stop, StringComparison.Ordinal);

        var options = new ChatCompletionOptions { MaxOutputTokenCount = 40 };
        options.StopSequences.Add(stop);
        ChatCompletion cut = await _chat.CompleteChatAsync(msgs, options);

        Assert.Equal(ChatFinishReason.Stop, cut.FinishReason);
        Assert.Equal(text[..expectedCut], cut.Content.Count == 0 ? "" : cut.Content[0].Text);
        Assert.True(cut.Usage.OutputTokenCount < 40);
    }

    [Fact]
    public async Task CompleteChatStreaming_ContentMatchesNonStreaming_AndUsageArrivesLast()
    {
        var msgs = new ChatMessage[] { new UserChatMessage("Stream me a sentence.") };
        ChatCompletion whole = await _chat.CompleteChatAsync(msgs, new ChatCompletionOptions { MaxOutputTokenCount = 25 });

        var sb = new StringBuilder();
        ChatFinishReason? finish = null;
        ChatTokenUsage? usage = null;
        int updates = 0;
        await foreach (var u in _chat.CompleteChatStreamingAsync(msgs, new ChatCompletionOptions { MaxOutputTokenCount = 25 }))
        {
            updates++;
            foreach (var part in u.ContentUpdate)
            {
                sb.Append(part.Text);
            }

            finish ??= u.FinishReason;
            usage ??= u.Usage;
        }

        Assert.Equal(whole.Content[0].Text, sb.ToString());
        Assert.Equal(ChatFinishReason.Length, finish);
        Assert.NotNull(usage); // the client asks for stream_options.include_usage
        Assert.Equal(25, usage!.OutputTokenCount);
        Assert.Equal(whole.Usage.InputTokenCount, usage.InputTokenCount);
        Assert.True(updates >= 25, $"one chunk per token expected, got {updates} updates");
    }

    [Fact]
    public async Task RawStream_IncludeUsage_FinalChunkHasEmptyChoicesAndUsage_ThenDone()
    {
        using var http = TestWorkers.Http(_host);
        string body = TestWorkers.ChatBody("raw stream please", 5, stream: true, extra: ""","stream_options":{"include_usage":true}""");
        using var resp = await http.PostAsync("/v1/chat/completions", new StringContent(body, Encoding.UTF8, "application/json"));
        Assert.Equal("text/event-stream", resp.Content.Headers.ContentType!.MediaType);
        string text = await resp.Content.ReadAsStringAsync();
        var data = text.Split("\n\n", StringSplitOptions.RemoveEmptyEntries).Select(e => e["data: ".Length..]).ToList();
        Assert.Equal("[DONE]", data[^1]);
        var last = System.Text.Json.JsonDocument.Parse(data[^2]).RootElement;
        Assert.Equal(0, last.GetProperty("choices").GetArrayLength());
        Assert.Equal(5, last.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        Assert.True(last.GetProperty("usage").GetProperty("prompt_tokens_details").TryGetProperty("cached_tokens", out _));
        var finish = System.Text.Json.JsonDocument.Parse(data[^3]).RootElement.GetProperty("choices")[0];
        Assert.Equal("length", finish.GetProperty("finish_reason").GetString());
        foreach (var chunk in data.Take(data.Count - 2))
        {
            var root = System.Text.Json.JsonDocument.Parse(chunk).RootElement;
            Assert.Equal("chat.completion.chunk", root.GetProperty("object").GetString());
            Assert.Equal(System.Text.Json.JsonValueKind.Null, root.GetProperty("usage").ValueKind);
        }

        // Without include_usage there is no usage chunk.
        string plain = TestWorkers.ChatBody("raw stream please", 5, stream: true);
        using var resp2 = await http.PostAsync("/v1/chat/completions", new StringContent(plain, Encoding.UTF8, "application/json"));
        string text2 = await resp2.Content.ReadAsStringAsync();
        Assert.DoesNotContain("\"usage\"", text2, StringComparison.Ordinal);
        Assert.EndsWith("data: [DONE]\n\n", text2, StringComparison.Ordinal);
    }

    [Fact]
    public async Task CacheSalt_HeaderAndBody_SeparateCacheNamespaces()
    {
        using var http = TestWorkers.Http(_host);
        string body = TestWorkers.ChatBody(TestWorkers.Text(300, "salted"), 1);
        var (s1, first) = await TestWorkers.PostJsonAsync(http, "/v1/chat/completions", body, ("x-cache-salt", "tenant-a"));
        var (_, sameSalt) = await TestWorkers.PostJsonAsync(http, "/v1/chat/completions", body, ("x-cache-salt", "tenant-a"));
        var (_, otherSalt) = await TestWorkers.PostJsonAsync(http, "/v1/chat/completions", body, ("x-cache-salt", "tenant-b"));
        string bodySalted = TestWorkers.ChatBody(TestWorkers.Text(300, "salted"), 1, extra: ""","cache_salt":"tenant-a" """);
        var (_, viaBody) = await TestWorkers.PostJsonAsync(http, "/v1/chat/completions", bodySalted);

        static int Cached(System.Text.Json.JsonElement e) => e.GetProperty("usage").GetProperty("prompt_tokens_details").GetProperty("cached_tokens").GetInt32();
        Assert.Equal(200, s1);
        Assert.Equal(0, Cached(first));
        Assert.True(Cached(sameSalt) > 0);
        Assert.Equal(0, Cached(otherSalt));
        Assert.True(Cached(viaBody) > 0, "body cache_salt names the same namespace as the header");
    }
}
