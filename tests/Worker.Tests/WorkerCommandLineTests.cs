using Cli;

namespace Worker.Tests;

public sealed class WorkerCommandLineTests
{
    [Fact]
    public void Parse_DocumentedCommandLine_SetsEveryOption()
    {
        var o = WorkerCommandLine.Parse(
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

    [Fact]
    public void Parse_BadValues_CollectsEveryError()
    {
        WorkerCommandLine.Parse(["--kv-blocks", "-1", "--time-scale", "fast", "--profile", "tpu-gpt5", "--bogus", "1", "--urls", "ftp://x", "stray"],
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
        WorkerCommandLine.Parse(["--seed"], out var errors, out bool help);
        Assert.False(help);
        Assert.Contains(errors, e => e.Contains("--seed", StringComparison.Ordinal));
        WorkerCommandLine.Parse(["--help"], out _, out help);
        Assert.True(help);
    }

    [Fact]
    public void Parse_AgentFlags_MaxTokensAsCapAndMaxToolResults()
    {
        var o = WorkerCommandLine.Parse(["--max-tokens-as-cap", "true", "--max-tool-results", "3", "--log-level", "debug"], out var errors, out _);
        Assert.Empty(errors);
        Assert.True(o.MaxTokensAsCap);
        Assert.Equal(3, o.MaxToolResults);
        Assert.Equal(Microsoft.Extensions.Logging.LogLevel.Debug, o.LogLevel);
        Assert.False(WorkerCommandLine.Parse([], out _, out _).MaxTokensAsCap);
    }

    [Fact]
    public void Parse_RepeatedOption_LastValueWins()
    {
        // The image's entrypoint passes --urls and a chart's arguments pass it again.
        var o = WorkerCommandLine.Parse(["--urls", "http://0.0.0.0:8000", "--block-size", "16", "--urls", "http://0.0.0.0:9001", "--block-size=32"], out var errors, out _);
        Assert.Empty(errors);
        Assert.Equal("http://0.0.0.0:9001", o.Url);
        Assert.Equal(32, o.BlockSize);
    }

    [Fact]
    public void Invoke_TwoBadOptions_ReportsBothAndExits2WithoutServing()
    {
        bool served = false;
        var stderr = new StringWriter();
        int rc = WorkerCommandLine.Create(_ => { served = true; return 0; }, new StringWriter(), stderr).App
            .Invoke(["--block-size", "0", "--max-pinned-fraction", "2"], new StringWriter(), stderr);
        Assert.Equal(CliApp.UsageError, rc);
        Assert.False(served);
        Assert.Contains("error: --block-size must be in [1, 1024], got 0", stderr.ToString(), StringComparison.Ordinal);
        Assert.Contains("error: --max-pinned-fraction must be in [0, 1], got 2", stderr.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void Invoke_ValidCommandLine_Serves()
    {
        WorkerOptions? served = null;
        int rc = WorkerCommandLine.Create(o => { served = o; return 0; }).App.Invoke(["--urls", "http://127.0.0.1:0", "--kv-blocks", "64"], new StringWriter(), new StringWriter());
        Assert.Equal(0, rc);
        Assert.Equal(64, served!.KvBlocks);
    }

    [Theory]
    [InlineData]
    [InlineData("make-model")]
    public void Help_ListsEveryOptionWithItsDefault(params string[] verb)
    {
        var cl = WorkerCommandLine.Create(_ => 0);
        var stdout = new StringWriter();
        Assert.Equal(0, cl.App.Invoke([.. verb, "--help"], stdout, new StringWriter()));
        var command = verb.Length == 0 ? cl.App.Root : cl.App.Root.Subcommands.Single(c => c.Name == verb[0]);
        HelpText.AssertEveryOptionHasADefault(command, stdout.ToString());
    }
}
