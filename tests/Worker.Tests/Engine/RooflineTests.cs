using Worker.Engine;
using static Worker.Tests.Engine.EngineTestKit;

namespace Worker.Tests.Engine;

public class RooflineTests
{
    [Fact]
    public void Ttft_SecondIdenticalPrompt_MuchShorterPrefill()
    {
        var engine = NewEngine();
        Submit(engine, Request("a", promptTokens: 4000, outputTokens: 1, doc: 1));
        var cold = RunToCompletion(engine).First(e => e.Event.Kind == SequenceEventKind.FirstToken).At;
        Submit(engine, Request("b", promptTokens: 4000, outputTokens: 1, doc: 1));
        var warm = RunToCompletion(engine).First(e => e.Event.Kind == SequenceEventKind.FirstToken).At;

        Assert.True(warm.Ticks * 5 < cold.Ticks, $"cold {cold}, warm {warm}");
    }

    [Theory]
    [InlineData(ModelProfiles.H100Llama3_8B)]
    [InlineData(ModelProfiles.H200Llama3_8B)]
    [InlineData(ModelProfiles.H100Llama3_70B_Tp4)]
    public void Profile_DecodeIsMemoryBoundAndPrefillComputeBound(string name)
    {
        var p = ModelProfiles.Get(name);

        // Decode: doubling a small batch barely changes the step (weights dominate the bytes read).
        double d1 = p.DecodeStepSeconds(1, 1000);
        double d8 = p.DecodeStepSeconds(8, 8000);
        Assert.InRange(d8 / d1, 1.0, 1.3);
        // Prefill: time grows about linearly with tokens once past the weight-read floor.
        double p2k = p.PrefillSeconds(2048, 0);
        double p8k = p.PrefillSeconds(8192, 0);
        Assert.InRange(p8k / p2k, 3.5, 4.5);
        // Long cached context costs attention.
        Assert.True(p.PrefillSeconds(2048, 100_000) > 1.5 * p2k);
        Assert.True(p.DefaultKvBlocks(16) > 10_000);
    }

    [Fact]
    public void Profiles_RelativeSpeeds_MatchTheHardware()
    {
        var h100 = ModelProfiles.Get(ModelProfiles.H100Llama3_8B);
        var h200 = ModelProfiles.Get(ModelProfiles.H200Llama3_8B);
        var big = ModelProfiles.Get(ModelProfiles.H100Llama3_70B_Tp4);

        // H200 has 4.8/3.35 the bandwidth and the same compute.
        Assert.InRange(h100.DecodeStepSeconds(1, 1000) / h200.DecodeStepSeconds(1, 1000), 1.25, 1.45);
        Assert.InRange(h100.PrefillSeconds(4096, 0) / h200.PrefillSeconds(4096, 0), 0.95, 1.05);
        // 70B on 4 GPUs: about 2.2x the per-GPU weight bytes of 8B on 1, plus all-reduces.
        Assert.InRange(big.DecodeStepSeconds(1, 1000) / h100.DecodeStepSeconds(1, 1000), 2.0, 3.0);
        Assert.True(h200.DefaultKvBlocks(16) > 2 * h100.DefaultKvBlocks(16));
        Assert.Equal(131072, h100.KvBytesPerToken);
        Assert.Equal(327680, big.KvBytesPerToken);
    }

    [Fact]
    public void StepSeconds_DecodeRidingAlongALargeChunk_CostsFarLessThanASeparateDecodeStep()
    {
        var p = ModelProfiles.Get(ModelProfiles.H100Llama3_8B);
        double prefill = p.PrefillSeconds(2048, 0);
        double decode = p.DecodeStepSeconds(32, 32 * 1024);

        double mixed = p.StepSeconds(2048, 0, 32, 32 * 1024);

        Assert.True(mixed >= prefill);
        Assert.True(mixed - prefill < 0.5 * decode, $"mixed {mixed}, prefill {prefill}, decode {decode}");
    }

    [Fact]
    public void AllReduceSeconds_OnlyWithTensorParallelism_GrowsWithTokens()
    {
        var tp1 = ModelProfiles.Get(ModelProfiles.H100Llama3_8B);
        var tp4 = ModelProfiles.Get(ModelProfiles.H100Llama3_70B_Tp4);

        Assert.Equal(0, tp1.AllReduceSeconds(4096));
        Assert.True(tp4.AllReduceSeconds(1) > 0);
        Assert.True(tp4.AllReduceSeconds(8192) > 2 * tp4.AllReduceSeconds(1));
    }

    [Fact]
    public void Get_UnknownProfile_ListsTheKnownOnes()
    {
        var ex = Assert.Throws<ArgumentException>(() => ModelProfiles.Get("a100-gpt"));
        Assert.Contains("h100-llama3-8b", ex.Message, StringComparison.Ordinal);
        Assert.Equal(3, ModelProfiles.Names.Count);
        Assert.Same(ModelProfiles.Get("H100-LLAMA3-8B"), ModelProfiles.Get(ModelProfiles.H100Llama3_8B));
    }

    [Fact]
    public void Execute_CustomExecutor_DurationComesFromIt()
    {
        var engine = new LlmEngine(new EngineOptions { Profile = ModelProfiles.Get(ModelProfiles.H100Llama3_8B), KvBlocks = 100 }, new FakeTimeProvider(), new FixedExecutor());
        Submit(engine, Request("a", 100, 3));

        var s = engine.Step();

        Assert.Equal(TimeSpan.FromMilliseconds(100), s.Duration);
    }

    private sealed class FixedExecutor : IStepExecutor
    {
        public TimeSpan Execute(StepPlan plan) => TimeSpan.FromMilliseconds(plan.TotalTokens);
    }
}
