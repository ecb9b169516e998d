using BenchmarkDotNet.Attributes;
using Llm.Prompt.Hashing;
using Worker.Engine;

namespace Gateway.Benchmarks;

/// <summary>
/// One <see cref="LlmEngine.Step"/> in steady state: 64 decoding sequences (512-token prompts, 2,048 output tokens; a finished
/// one is replaced at once by a new request of the same shape) plus one 32k-token prompt whose chunked prefill fills the rest
/// of a 2,048-token budget (replaced by a different document once prefilled, so the prefix cache keeps evicting).
/// </summary>
[MemoryDiagnoser]
public class SchedulerStepBenchmarks
{
    private const int Decoders = 64;
    private const int LongDocs = 16;
    private LlmEngine _engine = null!;
    private ulong[][] _shortHashes = [];
    private ulong[][] _longHashes = [];
    private string _longId = "";
    private int _next;

    [GlobalSetup]
    public void Setup()
    {
        _engine = new LlmEngine(
            new EngineOptions { Profile = ModelProfiles.Get(ModelProfiles.H100Llama3_8B), MaxBatchTokens = 2048 },
            TimeProvider.System);
        _shortHashes = new ulong[Decoders][];
        for (int i = 0; i < Decoders; i++)
        {
            _shortHashes[i] = Chain(i, 512 / 16);
        }

        _longHashes = new ulong[LongDocs][];
        for (int i = 0; i < LongDocs; i++)
        {
            _longHashes[i] = Chain(1000 + i, 32_768 / 16);
        }

        for (int i = 0; i < Decoders; i++)
        {
            SubmitShort(i);
        }

        SubmitLong();
        // Warm into steady state: every decoder prefilled and decoding.
        for (int i = 0; i < 200; i++)
        {
            Step();
        }
    }

    [Benchmark]
    public int Step_64Decoding_PlusChunkedPrefill() => Step();

    private int Step()
    {
        var result = _engine.Step();
        var events = result.Events;
        for (int i = 0; i < events.Count; i++)
        {
            var e = events[i];
            if (e.Kind == SequenceEventKind.Finished)
            {
                SubmitShort(_next % Decoders);
            }
            else if (e.Kind == SequenceEventKind.FirstToken && ReferenceEquals(e.RequestId, _longId))
            {
                _engine.Abort(_longId);
                SubmitLong();
            }
        }

        return result.BatchSize;
    }

    private void SubmitShort(int doc)
    {
        var r = new EngineRequest { Id = "s" + _next++, PromptTokens = 512, OutputTokens = 2048, BlockHashes = _shortHashes[doc] };
        if (!_engine.Submit(r, out var error))
        {
            throw new InvalidOperationException(error);
        }
    }

    private void SubmitLong()
    {
        _longId = "l" + _next;
        var r = new EngineRequest { Id = _longId, PromptTokens = 32_768, OutputTokens = 16, BlockHashes = _longHashes[_next++ % LongDocs] };
        if (!_engine.Submit(r, out var error))
        {
            throw new InvalidOperationException(error);
        }
    }

    private static ulong[] Chain(int doc, int blocks)
    {
        var result = new ulong[blocks];
        ulong parent = BlockHasher.Root;
        for (int i = 0; i < blocks; i++)
        {
            parent = BlockHasher.HashSynthetic(parent, 0, doc, i);
            result[i] = parent;
        }

        return result;
    }
}
