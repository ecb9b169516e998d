using Worker.Engine;
using static Worker.Tests.Engine.EngineTestKit;

namespace Worker.Tests.Engine;

public class EngineInvariantTests
{
    /// <summary>
    /// Seeded random mix of submits, aborts, retains, releases, clock advances and steps on a small pool. After every
    /// operation each block is exactly one of: referenced, pinned-idle, or allocatable; and every surviving request
    /// emits token indices 0..n-1 exactly once, in order.
    /// </summary>
    [Theory]
    [InlineData(1, 0)]
    [InlineData(2, 0)]
    [InlineData(3, 0)]
    [InlineData(4, 48)]
    [InlineData(5, 48)]
    public void RandomOperations_BlockAccountingAndTokenStreamsStayConsistent(int seed, int longPrefill)
    {
        var rng = new Random(seed);
        var time = new FakeTimeProvider();
        var engine = NewEngine(kvBlocks: 96, maxBatchTokens: 256, maxRunning: 12, maxPinned: 0.4, time: time, longPrefill: longPrefill);
        var blocks = engine.Blocks;
        var expected = new Dictionary<string, int>();
        var nextIndex = new Dictionary<string, int>();
        var aborted = new HashSet<string>();
        var finished = new HashSet<string>();
        int id = 0;

        void Check()
        {
            Assert.Equal(blocks.TotalBlocks, blocks.UsedBlocks + blocks.PinnedIdleBlocks + blocks.AvailableBlocks);
            Assert.InRange(blocks.PinnedBlocks, 0, blocks.MaxPinnedBlocks);
        }

        for (int op = 0; op < 3000; op++)
        {
            int dice = rng.Next(100);
            if (dice < 15)
            {
                string rid = $"r{id++}";
                int doc = rng.Next(6);
                int prompt = 16 * rng.Next(1, 30) + rng.Next(16);
                int output = rng.Next(1, 120);
                var r = Request(rid, prompt, output, doc: doc, session: $"s{doc}", retentionTtlMs: rng.Next(4) == 0 ? 2000 : 0);
                if (engine.Submit(r, out _))
                {
                    expected[rid] = output;
                    nextIndex[rid] = 0;
                }
            }
            else if (dice < 18 && expected.Count > 0)
            {
                string victim = $"r{rng.Next(id)}";
                if (engine.Abort(victim))
                {
                    aborted.Add(victim);
                }
            }
            else if (dice < 22)
            {
                engine.Retain(new RetainRequest { SessionId = $"s{rng.Next(6)}", TtlMs = rng.Next(100, 5000), Value = rng.NextDouble(), Priority = rng.Next(3) });
            }
            else if (dice < 24)
            {
                engine.Release(new ReleaseRequest { SessionId = $"s{rng.Next(6)}" });
            }
            else if (dice < 28)
            {
                time.Advance(TimeSpan.FromMilliseconds(rng.Next(1, 1500)));
            }
            else
            {
                foreach (var e in engine.Step().Events)
                {
                    Assert.DoesNotContain(e.RequestId, aborted);
                    if (e.Kind == SequenceEventKind.Finished)
                    {
                        Assert.Equal(expected[e.RequestId], nextIndex[e.RequestId]);
                        Assert.True(finished.Add(e.RequestId));
                    }
                    else
                    {
                        Assert.Equal(nextIndex[e.RequestId], e.TokenIndex);
                        Assert.Equal(e.TokenIndex == 0 ? SequenceEventKind.FirstToken : SequenceEventKind.Token, e.Kind);
                        nextIndex[e.RequestId]++;
                    }
                }
            }

            Check();
        }

        foreach (var (e, _, _) in RunToCompletion(engine))
        {
            if (e.Kind == SequenceEventKind.Finished)
            {
                Assert.True(finished.Add(e.RequestId));
            }
            else
            {
                Assert.Equal(nextIndex[e.RequestId]++, e.TokenIndex);
            }
        }

        Check();
        Assert.Equal(0, blocks.UsedBlocks);
        Assert.Equal(expected.Count - aborted.Count, finished.Count);
        Assert.True(engine.GetState().PreemptionsTotal > 0, "the mix should have exercised preemption");
    }
}
