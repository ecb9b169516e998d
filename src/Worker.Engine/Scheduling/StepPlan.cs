namespace Worker.Engine;

/// <summary>One sequence's share of a step: <see cref="NewTokens"/> query tokens after <see cref="ContextTokens"/> already in the KV cache.</summary>
public readonly record struct ScheduledChunk(string RequestId, int NewTokens, int ContextTokens, bool IsDecode);

/// <summary>
/// What the scheduler decided for one iteration, handed to an <see cref="IStepExecutor"/>. Reused between steps
/// (the engine owns it); executors must not keep a reference.
/// </summary>
public sealed class StepPlan
{
    private readonly List<ScheduledChunk> _chunks = [];

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

    internal void Clear()
    {
        _chunks.Clear();
        PrefillTokens = 0;
        DecodeTokens = 0;
        DecodeContextTokens = 0;
    }

    internal void Add(ScheduledChunk chunk)
    {
        _chunks.Add(chunk);
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
/// Executes a planned step and says how long it took. The roofline model returns a modelled duration; a real backend
/// (issue 10's CPU backend) would run the forward pass and return the measured one. Planning stays in the scheduler.
/// </summary>
public interface IStepExecutor
{
    /// <summary>Runs (or models) the step and returns its duration.</summary>
    TimeSpan Execute(StepPlan plan);
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
