using System.Text.Json;
using LoadGen.Client;
using LoadGen.Metrics;
using LoadGen.Reporting;

namespace LoadGen.Tests.Reporting;

public sealed class WorkloadRecorderTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("workload-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static ChatRequest Request(string system, string user, string? session = null) => new()
    {
        Tenant = new Tenant("t1", null),
        Messages = [new ChatMessage("system", system), new ChatMessage("user", user)],
        MaxTokens = 32,
        SessionId = session,
    };

    [Fact]
    public void Blocks_SharedSystemPrompt_SameLeadingHashesThenDiverge()
    {
        string system = string.Join(' ', Enumerable.Range(0, 200).Select(i => $"w{i}"));
        var (tokensA, a) = WorkloadRecorder.Blocks(Request(system, "first question here").Messages);
        var (tokensB, b) = WorkloadRecorder.Blocks(Request(system, "another, different one").Messages);
        var (_, c) = WorkloadRecorder.Blocks(Request("unrelated " + system, "first question here").Messages);
        Assert.Equal(tokensA / WorkloadRecorder.BlockSize, a.Length); // full blocks only, as the gateway hashes
        int shared = 0;
        while (shared < Math.Min(a.Length, b.Length) && a[shared] == b[shared])
        {
            shared++;
        }

        Assert.True(shared >= 10, $"only {shared} shared blocks"); // ~200+ tokens of system prompt = 12+ full blocks
        Assert.True(shared < a.Length || shared < b.Length || tokensA != tokensB);
        Assert.NotEqual(a[0], c[0]); // a different start shares nothing
    }

    [Fact]
    public void Write_SessionTurns_ThinkIsGapAfterPreviousCompletionAndLinesAreCanonical()
    {
        var recorder = new WorkloadRecorder();
        recorder.Add(Request("sys", "turn 2", "s1"), new RequestResult { Tenant = "t1", StartSeconds = 3.0, E2eMs = 500, OutputTokens = 7 });
        recorder.Add(Request("sys", "turn 1", "s1"), new RequestResult { Tenant = "t1", StartSeconds = 1.0, E2eMs = 1500, OutputTokens = 5 });
        recorder.Add(Request("sys", "one-shot"), new RequestResult { Tenant = "t2", StartSeconds = 2.0, E2eMs = 100 });
        string path = Path.Combine(_dir, "w.jsonl");
        recorder.Write(path);

        var lines = File.ReadAllLines(path).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.Equal([1.0, 2.0, 3.0], lines.Select(l => l.GetProperty("t").GetDouble()));
        Assert.Equal(0, lines[0].GetProperty("think").GetDouble());
        Assert.Equal(0.5, lines[2].GetProperty("think").GetDouble(), 6); // sent at 3.0, turn 1 ended at 2.5
        Assert.Equal(JsonValueKind.Null, lines[1].GetProperty("session").ValueKind);
        Assert.Equal(5, lines[0].GetProperty("out").GetInt32());
        Assert.Equal(32, lines[1].GetProperty("out").GetInt32()); // no usage reported: max_tokens
        Assert.All(lines, l =>
        {
            Assert.Equal(16, l.GetProperty("block_size").GetInt32());
            int blocks = l.GetProperty("hash_ids").GetArrayLength();
            Assert.Equal(l.GetProperty("in").GetInt32() / 16, blocks);
            Assert.All(l.GetProperty("hash_ids").EnumerateArray(), h => Assert.True(h.GetInt64() >= 0));
        });
    }

    [Fact]
    public void Write_RecordsHowEachTurnEnded_ToolCallsAsToolUseWithTheirNames()
    {
        var recorder = new WorkloadRecorder();
        var tool = new RequestResult { Tenant = "t", StartSeconds = 1, E2eMs = 100, FinishReason = "tool_calls" };
        tool.ToolCalls.Add(new ToolCall("c1", "Read", "{}"));
        tool.ToolCalls.Add(new ToolCall("c2", "Bash", "{}"));
        tool.ToolCalls.Add(new ToolCall("c3", "Read", "{}"));
        recorder.Add(Request("sys", "turn 1", "s"), tool);
        recorder.Add(Request("sys", "turn 2", "s"), new RequestResult { Tenant = "t", StartSeconds = 2, E2eMs = 100, FinishReason = "stop" });
        recorder.Add(Request("sys", "turn 3", "s"), new RequestResult { Tenant = "t", StartSeconds = 3, E2eMs = 100, Outcome = Outcome.Error });
        string path = Path.Combine(_dir, "stops.jsonl");
        recorder.Write(path);

        var lines = File.ReadAllLines(path).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.Equal("tool_use", lines[0].GetProperty("stop").GetString());
        Assert.Equal("Bash+Read", lines[0].GetProperty("tool").GetString());
        Assert.Equal("end_turn", lines[1].GetProperty("stop").GetString());
        Assert.Equal(JsonValueKind.Null, lines[1].GetProperty("tool").ValueKind);
        Assert.Equal(JsonValueKind.Null, lines[2].GetProperty("stop").ValueKind);
    }
}
