using Llm.Prompt.OpenAi;
using Llm.Prompt.Tokenization;
using Worker.Generation;

namespace Worker.Tests.Host;

public sealed class OutputPlannerTests
{
    private static readonly OutputPlanner Planner = new(new WorkerOptions());

    [Fact]
    public void PlanText_OnePiecePerToken_UnderTheDefaultTokenizer()
    {
        for (ulong seed = 1; seed < 40; seed++)
        {
            var plan = Planner.PlanText(seed, 50, 10_000, []);
            Assert.Equal(50, plan.OutputTokens);
            Assert.Equal(50, DefaultTokenizer.Instance.CountTokens(plan.Content()));
        }
    }

    [Fact]
    public void DrawLength_LogNormalAroundTheMedian_CappedAtMax()
    {
        var lengths = Enumerable.Range(0, 2001).Select(i => Planner.DrawLength(OutputPlanner.SeedOf(1, $"prompt {i}"), 100_000)).Order().ToArray();
        Assert.InRange(lengths[1000], 100, 160); // median 128
        Assert.True(lengths[^1] <= 1024);
        Assert.True(lengths[0] >= 1);
        var capped = Enumerable.Range(0, 200).Select(i => Planner.DrawLength(OutputPlanner.SeedOf(1, $"p{i}"), 50)).ToArray();
        Assert.All(capped, n => Assert.InRange(n, 1, 50)); // the context's room caps the draw
        Assert.Contains(50, capped);
    }

    [Fact]
    public void PlanText_Stop_CutsVisibleContentAndGenerationAtTheStopToken()
    {
        var full = Planner.PlanText(9, 60, 10_000, []);
        string text = full.Content();
        int at = text.IndexOf(' ', 30);
        string stop = text.Substring(at, 4);
        var cut = Planner.PlanText(9, 60, 10_000, [stop, "never-appears"]);
        Assert.Equal("stop", cut.FinishReason);
        Assert.Equal(text[..text.IndexOf(stop, StringComparison.Ordinal)], cut.Content());
        Assert.True(cut.OutputTokens < 60);
    }

    [Fact]
    public void PlanToolCall_ArgumentsInChunks_MaxTokensCutsWithLength()
    {
        string args = """{"location":"paris","unit":"celsius"}""";
        var plan = OutputPlanner.PlanToolCall(5, "get_weather", args, null, 10_000);
        Assert.Equal("tool_calls", plan.FinishReason);
        Assert.Equal(args, plan.ToolCall!.Arguments);
        Assert.Equal(1 + (args.Length + 3) / 4, plan.OutputTokens);

        var cut = OutputPlanner.PlanToolCall(5, "get_weather", args, 3, 10_000);
        Assert.Equal("length", cut.FinishReason);
        Assert.Equal(3, cut.OutputTokens);
        Assert.Equal(args[..8], cut.ToolCall!.Arguments);
    }

    [Fact]
    public void ToolRule_AutoAfterTool_StopsSometimes_AndAlwaysAfterTheCap()
    {
        var req = new OpenAiRequest
        {
            Endpoint = OpenAiEndpoint.ChatCompletions, Model = "m", ToolNames = ["a", "b"], ToolChoice = "auto", LastRole = "tool",
        };
        int calls = Enumerable.Range(0, 1000).Count(i => ToolCallRule.Decide(req, 1, (ulong)i * 7919) is not null);
        Assert.InRange(calls, 600, 800); // ~70% continue the loop
        Assert.All(Enumerable.Range(0, 50), i => Assert.Null(ToolCallRule.Decide(req, ToolCallRule.MaxToolResults, (ulong)i)));

        var afterUser = new OpenAiRequest { Endpoint = OpenAiEndpoint.ChatCompletions, Model = "m", ToolNames = ["a"], LastRole = "user" };
        Assert.Equal("a", ToolCallRule.Decide(afterUser, 0, 1));
        var afterAssistant = new OpenAiRequest { Endpoint = OpenAiEndpoint.ChatCompletions, Model = "m", ToolNames = ["a"], LastRole = "assistant" };
        Assert.Null(ToolCallRule.Decide(afterAssistant, 0, 1));
    }

    [Fact]
    public void MaxTokensAsCap_CutsTheDrawnLength_AndEndsByItselfUnderTheCap()
    {
        var capPlanner = new OutputPlanner(new WorkerOptions { MaxTokensAsCap = true });
        var plans = Enumerable.Range(1, 200).Select(i => (Drawn: capPlanner.DrawLength((ulong)i, 10_000), Plan: capPlanner.PlanText((ulong)i, 100, 10_000, []))).ToArray();
        Assert.All(plans, p => Assert.Equal(Math.Min(p.Drawn, 100), p.Plan.OutputTokens));
        Assert.All(plans, p => Assert.Equal(p.Drawn > 100 ? "length" : "stop", p.Plan.FinishReason));
        Assert.Contains(plans, p => p.Plan.FinishReason == "stop");
        Assert.Contains(plans, p => p.Plan.FinishReason == "length");
        Assert.Equal("length", Planner.PlanText(1, 100, 10_000, []).FinishReason); // default: max_tokens is the exact length
    }

    [Fact]
    public void ToolRule_CapAppliesWhateverTheLastRole_AndTrailingSystemMessagesDoNotEndTheTurn()
    {
        var afterUser = new OpenAiRequest { Endpoint = OpenAiEndpoint.ChatCompletions, Model = "m", ToolNames = ["a"], LastRole = "user" };
        Assert.Null(ToolCallRule.Decide(afterUser, 1, 1, maxToolResults: 1)); // tool results arrived with text beside them
        var endsWithSystem = new OpenAiRequest { Endpoint = OpenAiEndpoint.ChatCompletions, Model = "m", ToolNames = ["a"], LastRole = "system" };
        Assert.Null(ToolCallRule.Decide(endsWithSystem, 0, 1));
        Assert.Equal("a", ToolCallRule.Decide(endsWithSystem, 0, 1, lastTurnRole: "user"));
        var context = ToolCallRule.ReadContext(System.Text.Encoding.UTF8.GetBytes("""{"messages":[{"role":"user","content":"x"},{"role":"system","content":"reminder"}],"tools":[{"type":"function","function":{"name":"a"}}]}"""));
        Assert.Equal("user", context.LastTurnRole);
    }
}
