using Llm.Prompt.Hashing;
using Worker.Engine;

namespace Worker.Tests.Engine;

/// <summary>
/// The engine driving a token-producing backend: positions, token ids and block tables it hands the executor must be
/// consistent, so that prefix-cache hits, chunked prefill and preemption/recompute all yield the token stream of a cold
/// uncached run. <see cref="SlotCheckingExecutor"/> stands in for the model: it keeps, per physical KV slot, a hash of the
/// token prefix whose KV it holds, asserts that every attended position holds the right one, and samples the next token
/// from what it read.
/// </summary>
public sealed class TokenEngineTests
{
    private const int BlockSize = 16;

    [Fact]
    public void Prefix_cache_hit_yields_the_cold_token_stream_and_reports_the_hit()
    {
        var prompt = Prompt(seed: 1, length: 100);
        var cold = ColdStream(prompt, 12);

        var exec = new SlotCheckingExecutor(blocks: 64, BlockSize);
        var engine = NewEngine(exec, kvBlocks: 64);
        var first = Run(engine, exec, ("a", prompt, 12));
        var second = Run(engine, exec, ("b", prompt, 12));

        Assert.Equal(cold, first["a"].Tokens);
        Assert.Equal(cold, second["b"].Tokens);
        Assert.Equal(0, first["a"].Cached);
        Assert.Equal(96, second["b"].Cached); // 6 full blocks; the 4-token tail is recomputed
        Assert.Equal(4, exec.PrefillTokensOf("b"));
    }

    [Fact]
    public void Fully_cached_prompt_recomputes_its_last_block_for_logits()
    {
        var prompt = Prompt(seed: 2, length: 64);
        var cold = ColdStream(prompt, 5);
        var exec = new SlotCheckingExecutor(blocks: 32, BlockSize);
        var engine = NewEngine(exec, kvBlocks: 32);
        Run(engine, exec, ("a", prompt, 5));
        var again = Run(engine, exec, ("b", prompt, 5));

        Assert.Equal(cold, again["b"].Tokens);
        Assert.Equal(48, again["b"].Cached);
        Assert.Equal(16, exec.PrefillTokensOf("b"));
    }

    [Theory]
    [InlineData(7)] // not a multiple of the block size
    [InlineData(40)] // a prompt's last chunk leaves budget to admit a sharer in the same step
    public void Chunked_prefill_with_concurrent_shared_prefixes_matches_cold_runs(int maxBatchTokens)
    {
        var shared = Prompt(seed: 3, length: 80);
        var p1 = shared.Concat(Prompt(seed: 4, length: 37)).ToArray();
        var p2 = shared.Concat(Prompt(seed: 5, length: 21)).ToArray();
        var p3 = Prompt(seed: 6, length: 50);

        var exec = new SlotCheckingExecutor(blocks: 128, BlockSize);
        var engine = NewEngine(exec, kvBlocks: 128, maxBatchTokens);
        var got = Run(engine, exec, ("p1", p1, 9), ("p1again", p1, 9), ("p2", p2, 9), ("p3", p3, 9));

        Assert.Equal(ColdStream(p1, 9), got["p1"].Tokens);
        Assert.Equal(ColdStream(p2, 9), got["p2"].Tokens);
        Assert.Equal(ColdStream(p1, 9), got["p1again"].Tokens);
        Assert.Equal(ColdStream(p3, 9), got["p3"].Tokens);
        Assert.True(exec.MaxChunkTokens <= maxBatchTokens);
    }

    [Fact]
    public void Preemption_recomputes_prompt_and_generated_tokens_and_matches_cold_runs()
    {
        var prompts = Enumerable.Range(0, 4).Select(i => Prompt(seed: 10 + i, length: 40 + 7 * i)).ToArray();
        var exec = new SlotCheckingExecutor(blocks: 14, BlockSize);
        var engine = NewEngine(exec, kvBlocks: 14, maxBatchTokens: 64);
        var got = Run(engine, exec, prompts.Select((p, i) => ("r" + i, p, 60)).ToArray());

        Assert.True(engine.GetState().PreemptionsTotal > 0, "the tiny pool must force preemptions");
        for (int i = 0; i < prompts.Length; i++)
        {
            Assert.Equal(ColdStream(prompts[i], 60), got["r" + i].Tokens);
        }
    }

    [Fact]
    public void End_of_sequence_token_stops_with_reason_stop_and_max_tokens_with_length()
    {
        var prompt = Prompt(seed: 20, length: 30);
        var cold = ColdStream(prompt, 10);
        int k = Enumerable.Range(1, cold.Count - 1).First(i => !cold.Take(i).Contains(cold[i]));

        var exec = new SlotCheckingExecutor(blocks: 16, BlockSize, eos: cold[k]);
        var got = Run(NewEngine(exec, kvBlocks: 16), exec, ("s", prompt, 10));
        Assert.Equal(cold.Take(k + 1), got["s"].Tokens);
        Assert.Equal(FinishReason.Stop, got["s"].Reason);

        var exec2 = new SlotCheckingExecutor(blocks: 16, BlockSize);
        var got2 = Run(NewEngine(exec2, kvBlocks: 16), exec2, ("l", prompt, 3));
        Assert.Equal(cold.Take(3), got2["l"].Tokens);
        Assert.Equal(FinishReason.Length, got2["l"].Reason);
    }

    [Fact]
    public void A_token_backend_refuses_requests_without_matching_prompt_ids()
    {
        var exec = new SlotCheckingExecutor(blocks: 16, BlockSize);
        var engine = NewEngine(exec, kvBlocks: 16);
        Assert.False(engine.Submit(new EngineRequest { Id = "x", PromptTokens = 4, OutputTokens = 1, BlockHashes = [] }, out var e1));
        Assert.Contains("token ids are required", e1);
        Assert.False(engine.Submit(new EngineRequest { Id = "y", PromptTokens = 4, PromptTokenIds = [1, 2, 3], OutputTokens = 1, BlockHashes = [] }, out var e2));
        Assert.Contains("3 prompt token ids for a 4-token prompt", e2);
        Assert.False(engine.Submit(new EngineRequest { Id = "z", PromptTokens = 2, PromptTokenIds = [1, -2], OutputTokens = 1, BlockHashes = [] }, out var e3));
        Assert.Contains("non-negative", e3);
    }

    [Fact]
    public void Plan_exposes_ids_and_block_tables_of_each_chunk()
    {
        var exec = new SlotCheckingExecutor(blocks: 16, BlockSize);
        var engine = NewEngine(exec, kvBlocks: 16, maxBatchTokens: 20);
        var prompt = Prompt(seed: 30, length: 35);
        exec.Expect("a", prompt);
        Submit(engine, Request("a", prompt, 2));
        engine.Step();
        var (chunk, ids, table) = exec.LastPlan[0];
        Assert.Equal((0, 20, false), (chunk.ContextTokens, chunk.NewTokens, chunk.WantsLogits));
        Assert.Equal(prompt[..20], ids);
        Assert.Equal(2, table.Length);
        engine.Step();
        (chunk, ids, table) = exec.LastPlan[0];
        Assert.Equal((20, 15, true), (chunk.ContextTokens, chunk.NewTokens, chunk.WantsLogits));
        Assert.Equal(prompt[20..], ids);
        Assert.Equal(3, table.Length);
    }

    internal static int[] Prompt(int seed, int length)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, length).Select(_ => rng.Next(3, 259)).ToArray();
    }

    internal static EngineRequest Request(string id, int[] prompt, int output) => new()
    {
        Id = id,
        PromptTokens = prompt.Length,
        PromptTokenIds = prompt,
        OutputTokens = output,
        BlockHashes = BlockHasher.ComputeChain(prompt, 0, BlockSize),
    };

    private static List<int> ColdStream(int[] prompt, int output)
    {
        var exec = new SlotCheckingExecutor(blocks: 64, BlockSize);
        return Run(NewEngine(exec, kvBlocks: 64), exec, ("cold", prompt, output))["cold"].Tokens;
    }

    private static LlmEngine NewEngine(SlotCheckingExecutor exec, int kvBlocks, int maxBatchTokens = 8192) =>
        new(new EngineOptions
        {
            Profile = ModelProfiles.Get(ModelProfiles.H100Llama3_8B),
            KvBlocks = kvBlocks,
            BlockSize = BlockSize,
            MaxBatchTokens = maxBatchTokens,
        }, new FakeTimeProvider(), exec);

    private static void Submit(LlmEngine engine, EngineRequest r) => Assert.True(engine.Submit(r, out var error), error);

    private static Dictionary<string, (List<int> Tokens, int Cached, FinishReason Reason)> Run(LlmEngine engine, SlotCheckingExecutor exec, params (string Id, int[] Prompt, int Output)[] requests)
    {
        var result = new Dictionary<string, (List<int> Tokens, int Cached, FinishReason Reason)>();
        foreach (var (id, prompt, output) in requests)
        {
            exec.Expect(id, prompt);
            Submit(engine, Request(id, prompt, output));
            result[id] = ([], 0, FinishReason.None);
        }

        for (int i = 0; i < 10_000 && engine.HasWork; i++)
        {
            foreach (var e in engine.Step().Events)
            {
                var r = result[e.RequestId];
                if (e.Kind is SequenceEventKind.FirstToken or SequenceEventKind.Token)
                {
                    Assert.Equal(r.Tokens.Count, e.TokenIndex);
                    r.Tokens.Add(e.TokenId);
                }

                result[e.RequestId] = (r.Tokens, e.CachedTokens, e.Kind == SequenceEventKind.Finished ? e.Reason : r.Reason);
            }
        }

        Assert.False(engine.HasWork);
        return result;
    }
}

/// <summary>
/// A stand-in model that checks the engine's bookkeeping. Each physical slot remembers a hash of the token prefix whose
/// KV it holds (what a real K/V row depends on). A step first writes every chunk's positions, then checks that every
/// position each chunk attends to (0 .. end of chunk) holds the hash of this sequence's own prefix (and that its context
/// was there before the step's writes), then samples the
/// next token from the attended slots. Sequences are told to it up front (<see cref="Expect"/>); it extends them with
/// the tokens it samples and asserts that recomputed positions are fed the same ids.
/// </summary>
internal sealed class SlotCheckingExecutor(int blocks, int blockSize, int eos = -1) : ITokenStepExecutor
{
    private readonly ulong[] _slots = new ulong[blocks * blockSize];
    private readonly Dictionary<string, List<int>> _tokens = [];
    private readonly Dictionary<string, List<ulong>> _prefixHashes = [];
    private readonly Dictionary<string, int> _prefill = [];

    public int EosTokenId => eos;

    public int MaxChunkTokens { get; private set; }

    public List<(ScheduledChunk Chunk, int[] Ids, int[] Table)> LastPlan { get; } = [];

    public void Expect(string id, int[] prompt)
    {
        _tokens[id] = [.. prompt];
        _prefixHashes[id] = [];
    }

    public int PrefillTokensOf(string id) => _prefill.GetValueOrDefault(id);

    public TimeSpan Execute(StepPlan plan, Span<int> nextTokens)
    {
        LastPlan.Clear();
        for (int i = 0; i < plan.Chunks.Count; i++)
        {
            var c = plan.Chunks[i];
            var ids = plan.TokenIds(i);
            var table = plan.BlockTable(i);
            LastPlan.Add((c, ids.ToArray(), table.ToArray()));
            MaxChunkTokens = Math.Max(MaxChunkTokens, c.NewTokens);
            var known = _tokens[c.RequestId];
            Assert.Equal(c.NewTokens, ids.Length);
            Assert.Equal((c.ContextTokens + c.NewTokens + blockSize - 1) / blockSize, table.Length);
            Assert.Equal(c.IsDecode ? 1 : c.NewTokens, c.NewTokens);
            if (!c.IsDecode)
            {
                _prefill[c.RequestId] = _prefill.GetValueOrDefault(c.RequestId) + c.NewTokens;
            }

            // The context must have been computed by earlier steps: a block still being filled in this step is not readable.
            for (int p = 0; p < c.ContextTokens; p++)
            {
                Assert.True(_slots[Slot(table, p)] == PrefixHash(c.RequestId, p), $"{c.RequestId}: context position {p} was not computed before the step");
            }

            for (int j = 0; j < ids.Length; j++)
            {
                int p = c.ContextTokens + j;
                Assert.True(p < known.Count, $"{c.RequestId}: position {p} is past the {known.Count} known tokens");
                Assert.Equal(known[p], ids[j]);
            }
        }

        for (int i = 0; i < plan.Chunks.Count; i++)
        {
            var c = plan.Chunks[i];
            var table = plan.BlockTable(i);
            for (int p = c.ContextTokens; p < c.ContextTokens + c.NewTokens; p++)
            {
                _slots[Slot(table, p)] = PrefixHash(c.RequestId, p);
            }
        }

        for (int i = 0; i < plan.Chunks.Count; i++)
        {
            var c = plan.Chunks[i];
            var table = plan.BlockTable(i);
            ulong mix = 0;
            int end = c.ContextTokens + c.NewTokens;
            for (int p = 0; p < end; p++)
            {
                ulong held = _slots[Slot(table, p)];
                Assert.True(held == PrefixHash(c.RequestId, p), $"{c.RequestId}: slot of position {p} holds another prefix's KV");
                mix = (mix ^ held) * 0x100000001B3UL;
            }

            if (c.WantsLogits)
            {
                Assert.Equal(_tokens[c.RequestId].Count, end);
                int token = 3 + (int)(mix % 256);
                nextTokens[i] = token;
                _tokens[c.RequestId].Add(token);
            }
            else
            {
                Assert.True(end < _tokens[c.RequestId].Count);
            }
        }

        return TimeSpan.FromMilliseconds(plan.TotalTokens);
    }

    private int Slot(ReadOnlySpan<int> table, int position) => table[position / blockSize] * blockSize + position % blockSize;

    private ulong PrefixHash(string id, int position)
    {
        var hashes = _prefixHashes[id];
        var tokens = _tokens[id];
        while (hashes.Count <= position)
        {
            ulong parent = hashes.Count == 0 ? 0xCBF29CE484222325UL : hashes[^1];
            hashes.Add((parent ^ (ulong)tokens[hashes.Count]) * 0x100000001B3UL + 1);
        }

        return hashes[position];
    }
}
