using Simulator.Traces;

namespace Simulator.Tests.Traces;

public class TraceReaderTests
{
    [Fact]
    public void Mooncake_ValidLines_ConvertMsToSecondsAnd512Blocks()
    {
        using var f = new TestFiles();
        var path = f.Write("m.jsonl", "{\"timestamp\": 1500, \"input_length\": 1000, \"output_length\": 7, \"hash_ids\": [4, 9]}\n");
        var r = TraceReader.Read(path, TraceFormat.Mooncake);
        var q = Assert.Single(r.Requests);
        Assert.Equal(1.5, q.T);
        Assert.Equal(1000, q.In);
        Assert.Equal(7, q.Out);
        Assert.Equal(512, q.BlockSize);
        Assert.Equal(new long[] { 4, 9 }, q.HashIds.ToArray());
        Assert.Null(q.Session);
    }

    [Fact]
    public void Mooncake_MalformedLines_SkippedAndReportedWithLineNumbers()
    {
        using var f = new TestFiles();
        var path = f.Write("m.jsonl", string.Join('\n',
            "{\"timestamp\": 0, \"input_length\": 10, \"output_length\": 1, \"hash_ids\": [1]}",
            "{not json",
            "{\"timestamp\": 5, \"input_length\": -3, \"output_length\": 1, \"hash_ids\": [1]}",
            "",
            "{\"timestamp\": 9, \"output_length\": 1, \"hash_ids\": [1]}",
            "{\"timestamp\": 10, \"input_length\": 10, \"output_length\": 1, \"hash_ids\": [2]}"));
        var r = TraceReader.Read(path, TraceFormat.Mooncake);
        Assert.Equal(2, r.Requests.Count);
        Assert.Equal(new[] { 2, 3, 5 }, r.Issues.Select(i => i.Line).ToArray());
        Assert.All(r.Issues, i => Assert.Equal("m.jsonl", i.File));
        Assert.Contains("input_length", r.Issues[2].Message, StringComparison.Ordinal);
        Assert.StartsWith("m.jsonl:3:", r.Issues[1].ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void Strict_MalformedLine_ThrowsWithLine()
    {
        using var f = new TestFiles();
        var path = f.Write("m.jsonl", "{\"timestamp\": 0, \"input_length\": 10, \"output_length\": 1, \"hash_ids\": [1]}\n[]\n");
        var e = Assert.Throws<TraceFormatException>(() => TraceReader.Read(path, TraceFormat.Mooncake, strict: true));
        Assert.Equal(2, e.Issue.Line);
    }

    [Fact]
    public void Azure_SynthesisesUniqueIdsAndRelativeTimes()
    {
        using var f = new TestFiles();
        var path = f.Write("a.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.5000000,40,3\n2023-11-16 18:15:48.0000000,17,1\nbad,row\n2023-11-16 18:15:49.0000000,x,1\n");
        var r = TraceReader.Read(path, TraceFormat.Azure);
        Assert.Equal(2, r.Requests.Count);
        Assert.Equal(0, r.Requests[0].T);
        Assert.Equal(1.5, r.Requests[1].T, 6);
        Assert.Equal(3, r.Requests[0].HashIds.Count); // ceil(40/16)
        Assert.Empty(r.Requests[0].HashIds.ToArray().Intersect(r.Requests[1].HashIds.ToArray()));
        Assert.Equal(new[] { 4, 5 }, r.Issues.Select(i => i.Line).ToArray());
    }

    [Fact]
    public void Weka_GzFile_SessionTurnsThinkAndSubagent()
    {
        using var f = new TestFiles();
        // Parent turn 0 ends at 0+2=2; sub-agent runs 3..9 (marker t=9, 6 s); parent turn 1 at 12 → think 12-9 = 3.
        var json = """
        {"id": "trace_9", "block_size": 64, "hash_id_scope": "local", "requests": [
          {"t": 0.0, "type": "n", "in": 130, "out": 5, "hash_ids": [1, 2, 3], "stop": "tool_use", "api_time": 2.0, "think_time": 0.0},
          {"t": 9.0, "type": "subagent", "agent_id": "agent_001", "duration_ms": 6000, "requests": [
             {"t": 0.0, "type": "n", "in": 70, "out": 2, "hash_ids": [50, 51], "stop": "tool_use", "api_time": 1.0, "think_time": 0.0},
             {"t": 4.0, "type": "n", "in": 140, "out": 2, "hash_ids": [50, 51, 52], "stop": "end_turn", "api_time": 1.0, "think_time": 3.0}]},
          {"t": 12.0, "type": "n", "in": 200, "out": 9, "hash_ids": [1, 2, 3, 4], "stop": "end_turn", "api_time": 1.0, "think_time": 10.0},
          {"t": 20.0, "type": "n", "in": "oops", "out": 1, "hash_ids": [1]}
        ]}
        """;
        var path = f.Write("trace_9.json.gz", json);
        var r = TraceReader.Read(path, TraceFormat.Weka);
        var parent = r.Requests.Where(x => x.Session == "trace_9").ToList();
        var child = r.Requests.Where(x => x.Session == "trace_9/agent_001").ToList();
        Assert.Equal(2, parent.Count);
        Assert.Equal(2, child.Count);
        Assert.Equal(3.0, parent[1].Think, 6);
        Assert.Equal("trace_9", child[0].Parent);
        Assert.Equal(0, child[0].ParentTurn);
        Assert.Equal(1.0, child[0].Think, 6);   // starts at 9-6 = 3, one second after the parent turn ended at 2
        Assert.Equal(3.0, child[1].Think, 6);   // recorded think_time
        Assert.Equal(64, parent[0].BlockSize);
        var issue = Assert.Single(r.Issues);
        Assert.Equal(4, issue.Line); // 4th entry of "requests"
    }

    [Fact]
    public void Weka_GlobalScope_MergesStreamPairs()
    {
        using var f = new TestFiles();
        var json = """
        {"id": "t5", "block_size": 64, "hash_id_scope": "global", "requests": [
          {"t": 0.0, "type": "s", "in": 100, "out": 30, "hash_ids": [1], "stop": "", "api_time": 6.0, "think_time": 0.0},
          {"t": 7.0, "type": "n", "in": 100, "out": 40, "hash_ids": [1], "stop": "tool_use", "api_time": 7.0, "think_time": 0.0},
          {"t": 15.0, "type": "s", "in": 150, "out": 20, "hash_ids": [1, 2], "stop": "", "api_time": 6.0, "think_time": 1.0}
        ]}
        """;
        var dir = Path.Combine(f.Dir, "traces");
        f.Write("traces/t5.json", json);
        f.Write("traces/t6.json", json.Replace("\"t5\"", "\"t6\"", StringComparison.Ordinal));
        var r = TraceReader.Read(dir, TraceFormat.Weka);
        Assert.Equal(4, r.Requests.Count);
        Assert.Equal(2, r.MergedDuplicates);
        var first = r.Requests[0];
        Assert.Equal("t5", first.Session);
        Assert.Equal(40, first.Out);
        Assert.Equal("tool_use", first.Stop);
        Assert.Equal("t6", r.Requests[2].Session);
    }

    [Fact]
    public void Weka_Folder_MaxFiles_ReadsOnlyFirstFilesInNameOrder()
    {
        using var f = new TestFiles();
        const string one = "{\"id\": \"ID\", \"requests\": [{\"t\": 0, \"in\": 64, \"out\": 1, \"hash_ids\": [1]}]}";
        f.Write("tr/b.json", one.Replace("ID", "b", StringComparison.Ordinal));
        f.Write("tr/a.json.gz", one.Replace("ID", "a", StringComparison.Ordinal));
        f.Write("tr/notes.txt", "ignored");
        var all = TraceReader.Read(Path.Combine(f.Dir, "tr"), TraceFormat.Weka);
        Assert.Equal(new[] { "a", "b" }, all.Requests.Select(r => r.Session).ToArray());
        var first = TraceReader.Read(Path.Combine(f.Dir, "tr"), TraceFormat.Weka, weka: new WekaOptions { MaxFiles = 1 });
        Assert.Equal("a", Assert.Single(first.Requests).Session);
    }

    [Fact]
    public void Canonical_RoundTrip_PreservesEveryField()
    {
        using var f = new TestFiles();
        var reqs = new List<TraceRequest>
        {
            new() { T = 1.25, Tenant = "org-a/k1", Session = "s1", In = 40, Out = 3, BlockSize = 16, HashIds = HashIds.Of([7, 8]), Think = 0, Stop = "tool_use", Tool = "Bash" },
            new() { T = 9, Tenant = "org-a/k1", Session = "s1/a", In = 20, Out = 1, BlockSize = 16, HashIds = HashIds.Of([9]), Think = 2.5, Parent = "s1", ParentTurn = 0 },
        };
        var path = Path.Combine(f.Dir, "c.jsonl");
        CanonicalFormat.Write(reqs, path);
        var back = TraceReader.Read(path, TraceFormat.Canonical);
        Assert.Empty(back.Issues);
        Assert.Equal(2, back.Requests.Count);
        var a = back.Requests[0];
        Assert.Equal((1.25, "org-a/k1", "s1", 40, 3, 16, "tool_use", "Bash"), (a.T, a.Tenant, a.Session, a.In, a.Out, a.BlockSize, a.Stop, a.Tool));
        Assert.Equal(new long[] { 7, 8 }, a.HashIds.ToArray());
        var b = back.Requests[1];
        Assert.Equal(("s1", 0, 2.5), (b.Parent, b.ParentTurn, b.Think));
        Assert.StartsWith("{\"t\":1.25,\"tenant\":\"org-a/k1\",\"session\":\"s1\",\"in\":40,\"out\":3,\"block_size\":16,\"hash_ids\":[7,8],\"think\":0,\"stop\":\"tool_use\",\"tool\":\"Bash\"}", File.ReadAllText(path), StringComparison.Ordinal);
    }

    [Fact]
    public void Canonical_MalformedLine_ReportedWithLineNumber()
    {
        using var f = new TestFiles();
        var path = f.Write("c.jsonl", "{\"t\":0,\"in\":10,\"out\":1}\n{\"t\":1,\"in\":10}\n{\"t\":2,\"in\":10,\"out\":1,\"hash_ids\":\"x\"}\n");
        var r = TraceReader.Read(path, TraceFormat.Canonical);
        Assert.Single(r.Requests);
        Assert.Equal(new[] { 2, 3 }, r.Issues.Select(i => i.Line).ToArray());
    }

    [Fact]
    public void HashIds_Sharing_StoresOnlyTailButReadsWhole()
    {
        var a = HashIds.Of([.. Enumerable.Range(1, 40).Select(i => (long)i)]);
        var b = HashIds.Sharing(a, [.. Enumerable.Range(1, 45).Select(i => (long)i)]);
        Assert.Same(a, b.Prefix);
        Assert.Equal(5, b.Tail.Length);
        Assert.Equal(Enumerable.Range(1, 45).Select(i => (long)i), b.ToArray());
        var c = HashIds.Sharing(b, [.. Enumerable.Range(1, 30).Select(i => (long)i), 99]);
        Assert.Equal([.. Enumerable.Range(1, 30).Select(i => (long)i), 99L], c.ToArray());
    }
}
