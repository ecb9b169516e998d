namespace Worker.Tests.Host;

public sealed class WorkerOptionsTests
{
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
