using System.Runtime.InteropServices;

namespace Worker.Engine;

/// <summary>
/// One sequence's share of a step: <see cref="NewTokens"/> query tokens (positions ContextTokens .. ContextTokens+NewTokens-1)
/// after <see cref="ContextTokens"/> already in the KV cache. <see cref="WantsLogits"/>: the chunk ends at the sequence's
/// newest token (last prefill chunk, recompute end or decode), so its last position's logits sample the next token.
/// </summary>
public readonly record struct ScheduledChunk(string RequestId, int NewTokens, int ContextTokens, bool IsDecode, bool WantsLogits = false);

/// <summary>
/// What the scheduler decided for one iteration, handed to an <see cref="IStepExecutor"/>. Reused between steps
/// (the engine owns it); executors must not keep a reference.
/// </summary>
public sealed class StepPlan
{
    private readonly List<ScheduledChunk> _chunks = [];
    private readonly List<Sequence> _sequences = [];

    /// <summary>Scheduled chunks: running sequences first (admission order), then newly admitted ones.</summary>
    public IReadOnlyList<ScheduledChunk> Chunks => _chunks;

    /// <summary>Prefill (and recompute) tokens in the step.</summary>
    public int PrefillTokens { get; private set; }

    /// <summary>Decode tokens (= decoding sequences) in the step.</summary>
    public int DecodeTokens { get; private set; }

    /// <summary>Sum of the decoding sequences' contexts.</summary>
    public long DecodeContextTokens { get; private set; }

    /// <summary>Total tokens (≤ the step budget).</summary>
    public int TotalTokens => PrefillTokens + DecodeTokens;

    /// <summary>Chunks with <see cref="ScheduledChunk.WantsLogits"/> (each samples one token).</summary>
    public int LogitsChunks { get; private set; }

    /// <summary>
    /// Token ids of chunk <paramref name="chunk"/>'s positions (prompt ids, then generated ids), or empty when the request
    /// came without <see cref="EngineRequest.PromptTokenIds"/>. Valid until the step is committed.
    /// </summary>
    public ReadOnlySpan<int> TokenIds(int chunk)
    {
        var c = _chunks[chunk];
        var ids = _sequences[chunk].TokenIds;
        return ids is null ? [] : ids.AsSpan(c.ContextTokens, c.NewTokens);
    }

    /// <summary>
    /// Physical KV block ids of chunk <paramref name="chunk"/>'s sequence covering positions 0 .. ContextTokens+NewTokens-1
    /// (position p lives in block [p / block size], slot p % block size). Blocks before ContextTokens hold computed KV
    /// (possibly shared through the prefix cache: read only); the chunk writes its own positions. Valid until the step is committed.
    /// </summary>
    public ReadOnlySpan<int> BlockTable(int chunk) => CollectionsMarshal.AsSpan(_sequences[chunk].BlockTable);

    /// <summary>The request chunk <paramref name="chunk"/> belongs to (sampling parameters).</summary>
    public EngineRequest RequestAt(int chunk) => _sequences[chunk].Request;

    internal Sequence SequenceAt(int chunk) => _sequences[chunk];

    internal void Clear()
    {
        _chunks.Clear();
        _sequences.Clear();
        LogitsChunks = 0;
        PrefillTokens = 0;
        DecodeTokens = 0;
        DecodeContextTokens = 0;
    }

    /// <summary>Grows prefill chunk <paramref name="index"/> by <paramref name="extra"/> tokens (the long-prefill top-up).</summary>
    internal void Extend(int index, int extra, bool wantsLogits)
    {
        var c = _chunks[index];
        if (wantsLogits && !c.WantsLogits)
        {
            LogitsChunks++;
        }

        _chunks[index] = c with { NewTokens = c.NewTokens + extra, WantsLogits = c.WantsLogits || wantsLogits };
        PrefillTokens += extra;
    }

    internal void Add(ScheduledChunk chunk, Sequence sequence)
    {
        _chunks.Add(chunk);
        _sequences.Add(sequence);
        if (chunk.WantsLogits)
        {
            LogitsChunks++;
        }

        if (chunk.IsDecode)
        {
            DecodeTokens += chunk.NewTokens;
            DecodeContextTokens += chunk.ContextTokens;
        }
        else
        {
            PrefillTokens += chunk.NewTokens;
        }
    }
}

/// <summary>
/// Models a planned step and says how long it took (the roofline returns a modelled duration). Planning stays in the
/// scheduler; a backend that really computes tokens implements <see cref="ITokenStepExecutor"/> instead.
/// </summary>
public interface IStepExecutor
{
    /// <summary>Runs (or models) the step and returns its duration.</summary>
    TimeSpan Execute(StepPlan plan);
}

/// <summary>
/// A backend that really computes: for each chunk it writes the K/V of the chunk's positions through the block table, attends
/// to positions 0 .. end of chunk, and for each chunk that wants logits samples the next token. The engine appends those
/// tokens to the sequences (they are the next step's inputs), stops a sequence on <see cref="EosTokenId"/>, and requires
/// <see cref="EngineRequest.PromptTokenIds"/> on every request.
/// </summary>
public interface ITokenStepExecutor
{
    /// <summary>End-of-sequence token that finishes a sequence with <see cref="FinishReason.Stop"/>; -1 for none.</summary>
    int EosTokenId { get; }

    /// <summary>
    /// Executes the step; writes into <paramref name="nextTokens"/>[i] the token sampled for chunk i when
    /// <see cref="ScheduledChunk.WantsLogits"/> (other entries are ignored; the span has one entry per chunk).
    /// Returns the measured duration.
    /// </summary>
    TimeSpan Execute(StepPlan plan, Span<int> nextTokens);
}

/// <summary>Step executor that returns the roofline time of <see cref="ModelProfile"/>; nothing is computed or slept.</summary>
public sealed class RooflineStepExecutor(ModelProfile profile) : IStepExecutor
{
    public ModelProfile Profile { get; } = profile ?? throw new ArgumentNullException(nameof(profile));

    public TimeSpan Execute(StepPlan plan)
    {
        ArgumentNullException.ThrowIfNull(plan);
        double attendedPairs = 0;
        double kvRead = 0;
        var chunks = plan.Chunks;
        for (int i = 0; i < chunks.Count; i++)
        {
            var c = chunks[i];
            attendedPairs += c.IsDecode ? c.ContextTokens + 1 : ModelProfile.AttendedPairs(c.NewTokens, c.ContextTokens);
            kvRead += c.ContextTokens;
        }

        double seconds = Profile.StepSecondsFromTotals(plan.TotalTokens, attendedPairs, kvRead);
        return TimeSpan.FromTicks((long)Math.Round(seconds * TimeSpan.TicksPerSecond));
    }
}
