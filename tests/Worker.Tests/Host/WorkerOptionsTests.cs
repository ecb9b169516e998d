namespace Worker.Tests.Host;

public sealed class WorkerOptionsTests
{
    [Fact]
    public void Parse_DocumentedCommandLine_SetsEveryOption()
    {
        var o = WorkerOptions.Parse(
            ["--urls", "http://127.0.0.1:9001", "--profile", "h200-llama3-8b", "--kv-blocks", "5000", "--block-size", "32",
             "--time-scale", "0.1", "--model-name", "my-model", "--seed", "7", "--max-batch-tokens=4096", "--long-prefill-threshold", "512", "--output-median", "64",
             "--output-max", "256", "--kv-event-capacity", "50", "--tokenizer", "o200k_base"],
            out var errors, out bool help);
        Assert.Empty(errors);
        Assert.False(help);
        Assert.Equal("http://127.0.0.1:9001", o.Url);
        Assert.Equal("h200-llama3-8b", o.Profile);
        Assert.Equal(5000, o.KvBlocks);
        Assert.Equal(32, o.BlockSize);
        Assert.Equal(0.1, o.TimeScale);
        Assert.Equal("my-model", o.ModelName);
        Assert.Equal(7, o.Seed);
        Assert.Equal(4096, o.MaxBatchTokens);
        Assert.Equal(512, o.LongPrefillTokenThreshold);
        Assert.Equal(64, o.OutputLengthMedian);
        Assert.Equal(256, o.OutputLengthMax);
        Assert.Equal(50, o.KvEventCapacity);
        Assert.Equal("o200k_base", o.Tokenizer);
    }

    [Theory]
    [InlineData("roofline", "p50k_base", "unknown tokenizer")]
    [InlineData("roofline", "/nonexistent/tokenizer.json", "unknown tokenizer")]
    [InlineData("cpu", "o200k_base", "tokenizes prompts as bytes")]
    public void Validate_Tokenizer_UnknownOrNotTheBackendsVocabulary_IsAnError(string backend, string tokenizer, string message)
    {
        var errors = new WorkerOptions { Backend = backend, Tokenizer = tokenizer }.Validate();
        Assert.Contains(errors, e => e.Contains(message, StringComparison.Ordinal));
    }

    [Fact]
    public void Parse_BadValues_CollectsEveryError()
    {
        WorkerOptions.Parse(["--kv-blocks", "-1", "--time-scale", "fast", "--profile", "tpu-gpt5", "--bogus", "1", "--urls", "ftp://x", "stray"],
            out var errors, out _);
        Assert.Contains(errors, e => e.Contains("--kv-blocks", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.Contains("--time-scale", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.Contains("unknown profile", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.Contains("--bogus", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.Contains("--urls", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.Contains("stray", StringComparison.Ordinal));
    }

    [Fact]
    public void Parse_MissingValueAndHelp()
    {
        WorkerOptions.Parse(["--help", "--seed"], out var errors, out bool help);
        Assert.True(help);
        Assert.Contains(errors, e => e.Contains("--seed needs a value", StringComparison.Ordinal));
    }

    [Fact]
    public async Task StartAsync_InvalidOptions_Throws()
    {
        await Assert.ThrowsAsync<ArgumentException>(() => WorkerHost.StartAsync(new WorkerOptions { Profile = "nope" }));
    }

    [Fact]
    public async Task ModelName_OverridesTheServedModel()
    {
        await using var host = await WorkerHost.StartAsync(new WorkerOptions { ModelName = "custom-8b", KvBlocks = 256, TimeScale = 0 });
        Assert.Equal("custom-8b", host.ServedModel);
        using var http = TestWorkers.Http(host);
        var list = await TestWorkers.GetJsonAsync(http, "/v1/models");
        Assert.Equal("custom-8b", list.GetProperty("data")[0].GetProperty("id").GetString());
        var (status, _) = await TestWorkers.PostJsonAsync(http, "/v1/chat/completions", """{"model":"custom-8b","messages":[{"role":"user","content":"x"}],"max_tokens":1}""");
        Assert.Equal(200, status);
    }
}
