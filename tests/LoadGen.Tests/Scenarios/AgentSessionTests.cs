using System.IO.Compression;
using System.Text;
using LoadGen.Client;
using LoadGen.Metrics;
using LoadGen.Reporting;
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
    private static readonly AgentScaling Scale4NoTools = Scale4 with { ToolCalls = false };

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
    public void NoTools_PromptsShareExactlyTheTracePrefix_AndGapsAreScaledAndCapped()
    {
        var trace = WekaTrace.Load(WriteTrace("trace_0001.json.gz"));
        var s = new AgentSession(trace, new Tenant("t", null), "agent-0", Scale4NoTools);
        var p1 = s.Next(null)!.Value;
        var p2 = s.Next(new LoadGen.Metrics.RequestResult())!.Value;
        var p3 = s.Next(new LoadGen.Metrics.RequestResult())!.Value;
        Assert.Null(s.Next(new LoadGen.Metrics.RequestResult()));

        string a = p1.Request.Messages[0].Content!, b = p2.Request.Messages[0].Content!, c = p3.Request.Messages[0].Content!;
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
        Assert.All([p1, p2, p3], p => Assert.Null(p.Request.Tools));
    }

    private static RequestResult ToolAnswer(params string[] names) => WithCalls(new RequestResult(), names);

    private static RequestResult WithCalls(RequestResult r, string[] names)
    {
        r.FinishReason = names.Length > 0 ? "tool_calls" : "stop";
        for (int i = 0; i < names.Length; i++)
        {
            r.ToolCalls.Add(new ToolCall($"call_{i}", names[i], "{\"command\":\"ls\"}"));
        }

        return r;
    }

    [Fact]
    public void ToolUseTurn_AsksForACall_AndTheNextTurnAppendsTheCallAndItsResult()
    {
        var trace = WekaTrace.Load(WriteTrace("trace_0001.json.gz"));
        var s = new AgentSession(trace, new Tenant("t", null), "agent-0", Scale4);
        var p1 = s.Next(null)!.Value.Request;
        Assert.Equal("required", p1.ToolChoice);                    // the trace's turn 1 ended with tool_use
        Assert.Equal(AgentTools.Default, p1.Tools);
        Assert.Equal(48, p1.MaxTokens);                             // 160 / 4 = 40, raised to fit the call's arguments
        Assert.NotNull(p1.Seed);
        Assert.Null(p1.GapBefore);
        var only = Assert.Single(p1.Messages);
        Assert.Equal("user", only.Role);
        Assert.Equal(4 * 16, WordCount(only.Content!));

        var answer = ToolAnswer("Bash");
        answer.PromptTokens = 321;
        var p2 = s.Next(answer)!.Value.Request;
        Assert.Equal(Gap.Tool, p2.GapBefore);
        Assert.Equal(321, p2.ReusablePrefixTokens);                 // the whole previous prompt is this one's prefix
        Assert.Equal(3, p2.Messages.Count);
        Assert.Same(p1.Messages[0], p2.Messages[0]);
        Assert.Equal("assistant", p2.Messages[1].Role);
        Assert.Equal("Bash", Assert.Single(p2.Messages[1].ToolCalls!).Name);
        Assert.Equal("tool", p2.Messages[2].Role);
        Assert.Equal("call_0", p2.Messages[2].ToolCallId);
        Assert.Equal(2 * 16, WordCount(p2.Messages[2].Content!));  // the trace's request 2 adds blocks 5 and 6
        string first = string.Join(' ', WordsOf(only.Content!)), grown = string.Join(' ', WordsOf(only.Content!).Concat(WordsOf(p2.Messages[2].Content!)));
        Assert.Equal(string.Join(' ', WordsOf(new AgentSession(trace, new Tenant("t", null), "x", Scale4).Prompt(trace.Requests[1]))), grown);
        Assert.StartsWith(first, grown, StringComparison.Ordinal);

        // As the gateway hashes it (chat template, tools first): every full block of turn 1 is a prefix of turn 2.
        var (tokens1, h1) = WorkloadRecorder.Blocks(p1.Messages, p1.Tools);
        var (tokens2, h2) = WorkloadRecorder.Blocks(p2.Messages, p2.Tools);
        Assert.True(tokens2 > tokens1);
        Assert.Equal(h1, h2[..h1.Length]);
    }

    [Fact]
    public void RewrittenContext_StartsANewConversation_EndTurnAsksForText()
    {
        var trace = WekaTrace.Load(WriteTrace("trace_0001.json.gz"));
        var s = new AgentSession(trace, new Tenant("t", null), "agent-0", Scale4);
        s.Next(null);
        s.Next(ToolAnswer("Read"));
        var p3 = s.Next(ToolAnswer("Edit", "Grep"))!.Value.Request; // trace request 3 keeps blocks 1..3 only, then 7, 8
        Assert.Equal(Gap.Tool, p3.GapBefore);
        Assert.Null(p3.ReusablePrefixTokens);                       // a new conversation reuses nothing of the previous prompt
        var only = Assert.Single(p3.Messages);
        Assert.Equal(5 * 16, WordCount(only.Content!));
        Assert.Equal("none", p3.ToolChoice);                       // the trace's request 3 ended with end_turn
        Assert.Equal(4, p3.MaxTokens);                             // 16 / 4
    }

    [Fact]
    public void TextAnswer_IsAppendedWithAUserMessage_AnErrorRestartsTheConversation()
    {
        var trace = WekaTrace.Load(WriteTrace("trace_0001.json.gz"));
        var s = new AgentSession(trace, new Tenant("t", null), "agent-0", Scale4);
        s.Next(null);
        var text = new RequestResult { Content = "done." };
        var p2 = s.Next(text)!.Value.Request;                      // the server answered in text despite "required"
        Assert.Equal(Gap.Human, p2.GapBefore);
        Assert.Equal(["user", "assistant", "user"], p2.Messages.Select(m => m.Role));
        Assert.Equal("done.", p2.Messages[1].Content);

        var s2 = new AgentSession(trace, new Tenant("t", null), "agent-1", Scale4);
        s2.Next(null);
        var p2b = s2.Next(new RequestResult { Outcome = Outcome.Error, ErrorReason = "http_503" })!.Value.Request;
        Assert.Equal(6 * 16, WordCount(Assert.Single(p2b.Messages).Content!));
    }

    [Fact]
    public void SameSessionId_SameBodies_SubagentsNameTheirParent()
    {
        var trace = WekaTrace.Load(WriteTrace("trace_0001.json.gz"));
        var client = new SseChatClient(new HttpClient(), new Uri("http://127.0.0.1/"), "m", ClientTimeouts.Default);
        byte[] Body(string id, int turn)
        {
            var s = new AgentSession(trace, new Tenant("t", null), id, Scale4);
            var step = s.Next(null)!.Value;
            for (int i = 1; i <= turn; i++)
            {
                step = s.Next(ToolAnswer("Bash"))!.Value;
            }

            return client.BuildBody(step.Request);
        }

        Assert.Equal(Body("agent-3", 1), Body("agent-3", 1));
        Assert.NotEqual(Body("agent-3", 0), Body("agent-4", 0));    // another session, another seed
        var (_, child) = Assert.Single(new AgentSession(trace, new Tenant("t", null), "agent-3", Scale4).Children);
        var c = (AgentSession)child;
        Assert.Equal("agent-3", c.Next(null)!.Value.Request.ParentSessionId);
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

    private static int WordCount(string s) => WordsOf(s).Length;

    private static string[] WordsOf(string s) => s.Split(' ', StringSplitOptions.RemoveEmptyEntries);

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
