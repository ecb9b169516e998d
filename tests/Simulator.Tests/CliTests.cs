using System.Text.Json;

namespace Simulator.Tests;

public class CliTests
{
    private static int RunCli(params string[] args)
    {
        var entry = typeof(Scenario).Assembly.EntryPoint!;
        return (int)entry.Invoke(null, [args])!;
    }

    [Fact]
    public void Cli_TinyMooncakeRun_WritesJsonMarkdownAndSvg()
    {
        using var f = new TestFiles();
        var lines = Enumerable.Range(0, 30).Select(i =>
            $"{{\"timestamp\": {i * 100}, \"input_length\": {600 + i * 10}, \"output_length\": 5, \"hash_ids\": [{i % 3}, {100 + i}]}}");
        var trace = f.Write("m.jsonl", string.Join('\n', lines) + "\nnot json\n");
        var outPath = Path.Combine(f.Dir, "out", "result.json");
        int rc = RunCli("--trace", trace, "--format", "mooncake", "--workers", "2", "--routing", "round-robin,dynamo-kv",
            "--scheduling", "fcfs", "--retention", "off", "--out", outPath, "--parallel", "1");
        Assert.Equal(0, rc);
        using var doc = JsonDocument.Parse(File.ReadAllBytes(outPath));
        var root = doc.RootElement;
        Assert.Equal(30, root.GetProperty("requests").GetInt32());
        var runs = root.GetProperty("runs");
        Assert.Equal(2, runs.GetArrayLength());
        Assert.Equal("dynamo-kv", runs[1].GetProperty("routing").GetString());
        Assert.Equal(30, runs[0].GetProperty("completed").GetInt32());
        foreach (var key in new[] { "ttft_ms", "tpot_ms", "e2e_ms", "prefix_hit_ratio", "throughput_tokens_per_s", "rejected", "worker_load_max_over_min", "jain_index", "contended_seconds", "tenants", "reprefill_tokens_resumed", "pinned_block_seconds", "pinned_unused_block_seconds" })
        {
            Assert.True(runs[0].TryGetProperty(key, out _), key);
        }

        Assert.True(root.GetProperty("ideal_prefix_hit_ratio").GetDouble() > 0);
        Assert.Contains("| round-robin | fcfs | off |", File.ReadAllText(Path.Combine(f.Dir, "out", "result.md")), StringComparison.Ordinal);
        Assert.StartsWith("<svg", File.ReadAllText(Path.Combine(f.Dir, "out", "result.svg")), StringComparison.Ordinal);
    }

    [Fact]
    public void Cli_Seeds_RunsEachSeedAsItsOwnRun_AndSumsThemPerCombination()
    {
        using var f = new TestFiles();
        var lines = Enumerable.Range(0, 40).Select(i =>
            $"{{\"timestamp\": {i * 50}, \"input_length\": {900 + i * 37}, \"output_length\": {3 + i % 7}, \"hash_ids\": [{i % 4}, {100 + i}]}}");
        var trace = f.Write("m.jsonl", string.Join('\n', lines) + "\n");
        string[] common = ["--trace", trace, "--format", "mooncake", "--workers", "3", "--tenants", "2", "--routing", "kv-aware,round-robin", "--parallel", "2"];
        var both = Path.Combine(f.Dir, "both.json");
        Assert.Equal(0, RunCli([.. common, "--seeds", "1-2", "--out", both]));
        Assert.Equal(0, RunCli([.. common, "--seed", "2", "--out", Path.Combine(f.Dir, "two.json")]));

        using var doc = JsonDocument.Parse(File.ReadAllBytes(both));
        var runs = doc.RootElement.GetProperty("runs").EnumerateArray().ToList();
        Assert.Equal([(1, "kv-aware"), (1, "round-robin"), (2, "kv-aware"), (2, "round-robin")],
            runs.Select(r => (r.GetProperty("seed").GetInt32(), r.GetProperty("routing").GetString()!)));

        // The seed-2 runs are exactly what --seed 2 alone produces.
        using var two = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(f.Dir, "two.json")));
        var alone = two.RootElement.GetProperty("runs").EnumerateArray().ToList();
        Assert.Equal(alone.Select(r => r.GetRawText()), runs.Skip(2).Select(r => r.GetRawText()));
        Assert.False(two.RootElement.TryGetProperty("aggregates", out _));

        var agg = doc.RootElement.GetProperty("aggregates").EnumerateArray().ToList();
        Assert.Equal(["kv-aware", "round-robin"], agg.Select(a => a.GetProperty("routing").GetString()));
        Assert.Equal([1, 2], agg[0].GetProperty("seeds").EnumerateArray().Select(e => e.GetInt32()));
        double summed = runs.Where(r => r.GetProperty("routing").GetString() == "kv-aware").Sum(r => r.GetProperty("reprefill_tokens_resumed").GetDouble());
        Assert.Equal(summed, agg[0].GetProperty("reprefill_tokens_resumed").GetDouble());
        var tenants = agg[1].GetProperty("tenants").EnumerateArray().ToList();
        Assert.Equal(["tenant-0", "tenant-1"], tenants.Select(t => t.GetProperty("tenant").GetString()));
        foreach (var t in tenants)
        {
            double lo = t.GetProperty("ttft_ms_p99_min").GetDouble(), hi = t.GetProperty("ttft_ms_p99_max").GetDouble();
            Assert.InRange(t.GetProperty("ttft_ms_p99_median").GetDouble(), lo, hi);
            Assert.True(t.GetProperty("ttft_ms_p99_pooled").GetDouble() > 0);
        }

        Assert.Contains("## Across seeds", File.ReadAllText(Path.Combine(f.Dir, "both.md")), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("3-1")]
    [InlineData("1,x")]
    [InlineData("1-2000")]
    public void Cli_BadSeeds_FailsWithUsageError(string seeds)
    {
        using var f = new TestFiles();
        var trace = f.Write("m.jsonl", "{\"timestamp\": 0, \"input_length\": 10, \"output_length\": 1, \"hash_ids\": [1]}\n");
        Assert.Equal(2, RunCli("--trace", trace, "--format", "mooncake", "--seeds", seeds, "--out", Path.Combine(f.Dir, "r.json")));
        Assert.False(File.Exists(Path.Combine(f.Dir, "r.json")));
    }

    [Fact]
    public void Cli_UnknownPolicy_FailsWithUsageError()
    {
        using var f = new TestFiles();
        var trace = f.Write("m.jsonl", "{\"timestamp\": 0, \"input_length\": 10, \"output_length\": 1, \"hash_ids\": [1]}\n");
        Assert.Equal(2, RunCli("--trace", trace, "--format", "mooncake", "--routing", "nope", "--out", Path.Combine(f.Dir, "r.json")));
    }

    [Fact]
    public void Cli_ProgramPriority_OnRecordedInResult_BadValueIsUsageError()
    {
        using var f = new TestFiles();
        var trace = f.Write("m.jsonl", "{\"timestamp\": 0, \"input_length\": 10, \"output_length\": 1, \"hash_ids\": [1]}\n");
        Assert.Equal(2, RunCli("--trace", trace, "--format", "mooncake", "--program-priority", "maybe", "--out", Path.Combine(f.Dir, "r.json")));
        Assert.Equal(0, RunCli("--trace", trace, "--format", "mooncake", "--program-priority", "on", "--out", Path.Combine(f.Dir, "r.json")));
        using var doc = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(f.Dir, "r.json")));
        var run = doc.RootElement.GetProperty("runs")[0];
        Assert.Equal("on", run.GetProperty("program_priority").GetString());
        Assert.Equal(0, run.GetProperty("resumed_turns_boosted").GetInt64());
    }

    [Fact]
    public void Cli_Strict_StopsOnMalformedLine()
    {
        using var f = new TestFiles();
        var trace = f.Write("m.jsonl", "{\"timestamp\": 0, \"input_length\": 10, \"output_length\": 1, \"hash_ids\": [1]}\n{bad\n");
        Assert.Equal(1, RunCli("--trace", trace, "--format", "mooncake", "--strict", "--out", Path.Combine(f.Dir, "r.json")));
        Assert.False(File.Exists(Path.Combine(f.Dir, "r.json")));
    }

    [Fact]
    public void Cli_ScenarioFile_FlagsOverride()
    {
        using var f = new TestFiles();
        var trace = f.Write("m.jsonl", "{\"timestamp\": 0, \"input_length\": 100, \"output_length\": 2, \"hash_ids\": [1]}\n");
        var scenario = f.Write("s.json", "{\"trace\": \"m.jsonl\", \"format\": \"mooncake\", \"workers\": 2, \"routing\": [\"least-load\"], \"out\": \"a.json\"}");
        Assert.Equal(0, RunCli("--scenario", scenario, "--out", Path.Combine(f.Dir, "b.json")));
        Assert.True(File.Exists(Path.Combine(f.Dir, "b.json")));
        Assert.False(File.Exists(Path.Combine(f.Dir, "a.json")));
        using var doc = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(f.Dir, "b.json")));
        Assert.Equal("least-load", doc.RootElement.GetProperty("runs")[0].GetProperty("routing").GetString());
    }

    [Fact]
    public void Convert_WekaToCanonical_ThenSimulates()
    {
        using var f = new TestFiles();
        var weka = f.Write("trace_1.json", """
        {"id": "trace_1", "block_size": 64, "requests": [
          {"t": 0.0, "type": "n", "in": 300, "out": 5, "hash_ids": [1, 2, 3, 4, 5], "stop": "tool_use", "api_time": 1.0, "think_time": 0.0},
          {"t": 4.0, "type": "n", "in": 400, "out": 5, "hash_ids": [1, 2, 3, 4, 5, 6, 7], "stop": "end_turn", "api_time": 1.0, "think_time": 3.0}]}
        """);
        var canon = Path.Combine(f.Dir, "c.jsonl");
        Assert.Equal(0, RunCli("convert", "--trace", weka, "--format", "weka", "--out", canon, "--tenants", "2"));
        var lines = File.ReadAllLines(canon);
        Assert.Equal(2, lines.Length);
        Assert.Contains("\"tenant\":\"tenant-0\"", lines[1], StringComparison.Ordinal);
        Assert.Contains("\"think\":3", lines[1], StringComparison.Ordinal);
        Assert.Equal(0, RunCli("--trace", canon, "--format", "canonical", "--workers", "1", "--out", Path.Combine(f.Dir, "r.json")));
        using var doc = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(f.Dir, "r.json")));
        var run = doc.RootElement.GetProperty("runs")[0];
        Assert.Equal(2, run.GetProperty("completed").GetInt32());
        Assert.True(run.GetProperty("prefix_hit_ratio").GetDouble() > 0.4); // turn 2 reuses turn 1's 320 cached tokens
    }

    [Fact]
    public void Cli_TwoBadOptions_ReportsBothAtOnceAndExits2()
    {
        var (rc, _, stderr) = RunCliCaptured("--workers", "0", "--locality", "maybe");
        Assert.Equal(2, rc);
        Assert.Contains("error: --workers must be 1..1024", stderr, StringComparison.Ordinal);
        Assert.Contains("error: --locality must be one of on, off, got 'maybe'", stderr, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData]
    [InlineData("convert")]
    [InlineData("compare")]
    public void Cli_Help_ListsEveryOptionWithItsDefault(params string[] verb)
    {
        var (rc, stdout, _) = RunCliCaptured([.. verb, "--help"]);
        Assert.Equal(0, rc);
        var entries = stdout.Split("\n  -").Skip(1).Where(e => !e.StartsWith("?, -h, --help", StringComparison.Ordinal) && !e.StartsWith("-version", StringComparison.Ordinal)).ToList();
        Assert.True(entries.Count >= (verb.Length == 0 ? 50 : 5), stdout);
        Assert.All(entries, e => Assert.Contains("[default: ", e, StringComparison.Ordinal));
    }

    // Runs the CLI with Console.Out/Error captured (synchronized: other tests may write progress meanwhile).
    private static (int Rc, string Stdout, string Stderr) RunCliCaptured(params string[] args)
    {
        var (oldOut, oldErr) = (Console.Out, Console.Error);
        var (stdout, stderr) = (new StringWriter(), new StringWriter());
        Console.SetOut(TextWriter.Synchronized(stdout));
        Console.SetError(TextWriter.Synchronized(stderr));
        try
        {
            return (RunCli(args), stdout.ToString(), stderr.ToString());
        }
        finally
        {
            Console.SetOut(oldOut);
            Console.SetError(oldErr);
        }
    }
}
