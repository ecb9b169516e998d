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
    public void Cli_UnknownPolicy_FailsWithUsageError()
    {
        using var f = new TestFiles();
        var trace = f.Write("m.jsonl", "{\"timestamp\": 0, \"input_length\": 10, \"output_length\": 1, \"hash_ids\": [1]}\n");
        Assert.Equal(2, RunCli("--trace", trace, "--format", "mooncake", "--routing", "nope", "--out", Path.Combine(f.Dir, "r.json")));
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
}
