using System.IO.Compression;
using System.Text;
using LoadGen.Client;
using LoadGen.Scenarios;

namespace LoadGen.Tests.Scenarios;

public sealed class AgentSessionTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("weka-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    // Three root requests growing by blocks (ids 1..4, then 1..6, then 1..3 + 7..8: a rewrite after block 3),
    // a tool gap of 10 s and 20 s, and a sub-agent that ran 4 s before its marker at t=30.
    private const string TraceJson = """
        {"id":"t-1","block_size":64,"tool_tokens":100,"system_tokens":28,"requests":[
          {"t":0,"type":"n","in":256,"out":160,"hash_ids":[1,2,3,4],"stop":"tool_use","think_time":0},
          {"t":12,"type":"n","in":384,"out":32,"hash_ids":[1,2,3,4,5,6],"stop":"tool_use","think_time":10},
          {"t":30,"type":"subagent","duration_ms":4000,"requests":[{"t":0,"type":"n","in":128,"out":16,"hash_ids":[1,2],"think_time":0}]},
          {"t":40,"type":"n","in":320,"out":16,"hash_ids":[1,2,3,7,8],"stop":"end_turn","think_time":20}
        ]}
        """;

    private string WriteTrace(string name)
    {
        string path = Path.Combine(_dir, name);
        using var file = File.Create(path);
        using var gz = new GZipStream(file, CompressionLevel.Fastest);
        gz.Write(Encoding.UTF8.GetBytes(TraceJson));
        return path;
    }

    private static readonly AgentScaling Scale4 = new() { Scale = 4, TimeScale = 0.1, MaxThink = TimeSpan.FromSeconds(1.5) };

    [Fact]
    public void Load_ReadsRequestsAndSubagents()
    {
        var t = WekaTrace.Load(WriteTrace("trace_0001.json.gz"));
        Assert.Equal(3, t.Requests.Count);
        Assert.Equal(128, t.SharedPrefixTokens);
        var sub = Assert.Single(t.Subagents);
        Assert.Equal(26, sub.Start, 6);
        Assert.Single(sub.Requests);
    }

    [Fact]
    public void Next_PromptsShareExactlyTheTracePrefix_AndGapsAreScaledAndCapped()
    {
        var trace = WekaTrace.Load(WriteTrace("trace_0001.json.gz"));
        var s = new AgentSession(trace, new Tenant("t", null), "agent-0", Scale4);
        var p1 = s.Next(null)!.Value;
        var p2 = s.Next(new LoadGen.Metrics.RequestResult())!.Value;
        var p3 = s.Next(new LoadGen.Metrics.RequestResult())!.Value;
        Assert.Null(s.Next(new LoadGen.Metrics.RequestResult()));

        string a = p1.Request.Messages[0].Content, b = p2.Request.Messages[0].Content, c = p3.Request.Messages[0].Content;
        int words = Scale4.WordsPerBlock(64); // 16 words per 64-token block at scale 4
        Assert.Equal(16, words);
        Assert.Equal(4 * words, WordCount(a));
        Assert.Equal(6 * words, WordCount(b));
        Assert.StartsWith(a, b, StringComparison.Ordinal);          // request 2 extends request 1
        Assert.Equal(3 * words, CommonPrefixWords(b, c));           // request 3 shares blocks 1..3 only
        Assert.Equal(TimeSpan.Zero, p1.ThinkBefore);
        Assert.Equal(TimeSpan.FromSeconds(1), p2.ThinkBefore);      // 10 s × 0.1
        Assert.Equal(TimeSpan.FromSeconds(1.5), p3.ThinkBefore);    // 20 s × 0.1, capped at 1.5 s
        Assert.Equal(40, p1.Request.MaxTokens);                     // 160 / 4
        Assert.Equal("agent-0", p1.Request.SessionId);
    }

    [Fact]
    public void Prompt_SharedSystemBlocks_AreTheSameAcrossTraces_OtherBlocksAreNot()
    {
        // tool+system = 128 tokens = the first 2 blocks: shared by position across sessions of different traces.
        var t1 = WekaTrace.Load(WriteTrace("trace_0001.json.gz"));
        var t2 = t1 with { Id = "t-2" };
        string a = new AgentSession(t1, new Tenant("t", null), "a", Scale4).Prompt(t1.Requests[0]);
        string b = new AgentSession(t2, new Tenant("t", null), "b", Scale4).Prompt(t2.Requests[0]);
        Assert.Equal(2 * 16, CommonPrefixWords(a, b));
    }

    [Fact]
    public void Children_SubagentStartsAtItsScaledOffset()
    {
        var trace = WekaTrace.Load(WriteTrace("trace_0001.json.gz"));
        var s = new AgentSession(trace, new Tenant("t", null), "agent-0", Scale4);
        var (offset, child) = Assert.Single(s.Children);
        Assert.Equal(TimeSpan.FromSeconds(2.6), offset);
        Assert.Equal("agent-0/sub0", child.Id);
        Assert.NotNull(child.Next(null));
        Assert.Null(child.Next(new LoadGen.Metrics.RequestResult()));
    }

    [Fact]
    public void AgentScaling_Scale16_KeepsEveryFourthBlockAsOneEngineBlock()
    {
        var s = new AgentScaling { Scale = 16 };
        Assert.Equal(4, s.KeepEvery);
        Assert.Equal(16, s.WordsPerBlock(64));
    }

    private static int WordCount(string s) => s.Split(' ', StringSplitOptions.RemoveEmptyEntries).Length;

    private static int CommonPrefixWords(string a, string b)
    {
        var wa = a.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        var wb = b.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        int n = 0;
        while (n < wa.Length && n < wb.Length && wa[n] == wb[n])
        {
            n++;
        }

        return n;
    }
}
