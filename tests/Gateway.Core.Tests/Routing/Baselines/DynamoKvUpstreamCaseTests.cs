using Gateway.Core.Routing;
using Gateway.Core.Routing.Baselines;

namespace Gateway.Core.Tests.Routing.Baselines;

/// <summary>
/// Dynamo's own selector test cases, replayed through our <c>dynamo-kv</c> presets. Upstream (ai-dynamo/dynamo,
/// the <c>DefaultWorkerSelector</c> that computes <c>logit = overlap_score_weight * potential_prefill_block + decode_block</c>
/// and breaks ties by tree size) tests <c>softmax_sample</c> on given logits; here each logit is produced by a worker
/// state instead. With a one-block, 16-token request and no overlap, a worker with P pending prefill tokens and no
/// active blocks has logit (P + 16) / 16 + 1 (its pending prefill plus this prompt, in blocks, plus the one new
/// decode block), so P = 16 (L − 2) gives logit L. Upstream's negative-logit case is not reachable: the cost is a sum
/// of non-negative block counts.
/// </summary>
public class DynamoKvUpstreamCaseTests
{
    private static (DynamoKvPolicy Policy, List<WorkerInfo> Workers) FleetWithLogits(double temperature, params double[] logits)
    {
        var policy = new DynamoKvPolicy(new FakeTimeProvider(), DynamoKvOptions.Approximate with { Temperature = temperature }, DynamoKvPolicy.ApproxPolicyName, new Random(7));
        var workers = BaselineTestHelpers.Workers(logits.Length);
        for (int i = 0; i < logits.Length; i++)
        {
            workers[i].OnDispatched((int)Math.Round(16 * (logits[i] - 2)));
        }

        return (policy, workers);
    }

    private static RouteRequest OneBlock() => BaselineTestHelpers.Request("q", 1);

    // test_softmax_sample_zero_temperature: logits 5, 3, 7, 3.5 at temperature 0 → the worker with 3.
    [Fact]
    public void Upstream_ZeroTemperature_LowestLogitWins()
    {
        var (policy, workers) = FleetWithLogits(0, 5, 3, 7, 3.5);
        for (int i = 0; i < 20; i++)
        {
            Assert.Equal(1, policy.Route(OneBlock(), workers).WorkerIndex);
        }
    }

    // test_softmax_sample_zero_temperature, tied minimum: logits 5, 3, 3, 7 → both tied workers are candidates, and
    // select_worker takes the one whose radix tree is smaller ("use tree size as tie-breaker").
    [Theory]
    [InlineData(1, 2)]
    [InlineData(2, 1)]
    public void Upstream_ZeroTemperature_TiedLogits_SmallerTreeWins(int bigTree, int expected)
    {
        var (policy, workers) = FleetWithLogits(0, 5, 3, 3, 7);
        var earlier = BaselineTestHelpers.Request("earlier", 4);
        policy.OnRouted(earlier, workers[bigTree]);              // 4 blocks in that worker's tree...
        policy.OnCompleted(earlier, workers[bigTree], 0);        // ...and no longer active (logits unchanged)
        Assert.Equal(4, policy.IndexedBlocks(bigTree));

        Assert.Equal(expected, policy.Route(OneBlock(), workers).WorkerIndex);
    }

    // test_softmax_sample_single_key: one worker is always chosen, whatever the temperature or its logit.
    [Theory]
    [InlineData(0.1, 2.5)]
    [InlineData(1.0, 2.5)]
    [InlineData(10.0, 2.5)]
    [InlineData(1.0, 100.0)]
    [InlineData(1.0, 2.0)]
    public void Upstream_SingleWorker_AlwaysChosen(double temperature, double logit)
    {
        var (policy, workers) = FleetWithLogits(temperature, logit);
        for (int i = 0; i < 10; i++)
        {
            Assert.Equal(0, policy.Route(OneBlock(), workers).WorkerIndex);
        }
    }

    // test_overloaded_high_overlap_worker_is_skipped: worker 0 holds the prompt's blocks but is overloaded (here: not
    // eligible) → worker 1; test_all_eligible_workers_overloaded_returns_overload_error → no worker.
    [Fact]
    public void Upstream_OverloadedHolder_IsSkipped_AndNoEligibleWorker_IsNoDecision()
    {
        var policy = new DynamoKvPolicy(new FakeTimeProvider(), DynamoKvOptions.Approximate, DynamoKvPolicy.ApproxPolicyName);
        var workers = BaselineTestHelpers.Workers(2);
        var held = BaselineTestHelpers.Request("held", 4);
        policy.OnRouted(held, workers[0]);
        policy.OnCompleted(held, workers[0], 0);
        Assert.Equal(0, policy.Route(BaselineTestHelpers.Request("held", 4), workers).WorkerIndex);

        workers[0].Draining = true;
        Assert.Equal(1, policy.Route(BaselineTestHelpers.Request("held", 4), workers).WorkerIndex);

        workers[1].Draining = true;
        Assert.Equal(-1, policy.Route(BaselineTestHelpers.Request("held", 4), workers).WorkerIndex);
    }

    // Temperature > 0 samples by the min-max normalised logit: with logits 0, 3, 9 at temperature 1 the draw favours the
    // lowest (weights e^0, e^(−1/3), e^(−1)), as upstream's softmax_sample; every worker is reachable.
    [Fact]
    public void Upstream_PositiveTemperature_FavoursLowestLogit()
    {
        var (policy, workers) = FleetWithLogits(1.0, 2, 5, 11);
        var counts = new int[3];
        for (int i = 0; i < 3000; i++)
        {
            counts[policy.Route(OneBlock(), workers).WorkerIndex]++;
        }

        double z = 1 + Math.Exp(-1.0 / 3) + Math.Exp(-1);
        Assert.InRange(counts[0] / 3000.0, 1 / z - 0.05, 1 / z + 0.05);
        Assert.InRange(counts[2] / 3000.0, Math.Exp(-1) / z - 0.05, Math.Exp(-1) / z + 0.05);
        Assert.True(counts[0] > counts[1] && counts[1] > counts[2]);
    }
}
