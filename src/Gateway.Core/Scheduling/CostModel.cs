namespace Gateway.Core.Scheduling;

/// <summary>
/// Effective token cost of a request (VTC's service function, Sheng et al. OSDI'24):
/// <c>InputWeight x uncached prompt tokens + OutputWeight x generated tokens</c>. Defaults 1 and 2.
/// Cache hits are not charged by <c>hfair</c> (so locality is not penalised); <c>vtc</c> charges the whole prompt.
/// </summary>
public sealed record CostModel(double InputWeight = 1.0, double OutputWeight = 2.0)
{
    /// <summary>The default model (w_in = 1, w_out = 2).</summary>
    public static CostModel Default { get; } = new();

    /// <summary>Prefill cost of <paramref name="promptTokens"/> of which <paramref name="cachedTokens"/> are cached.</summary>
    public double Prefill(int promptTokens, int cachedTokens) =>
        InputWeight * Math.Max(0, promptTokens - Math.Max(0, cachedTokens));

    /// <summary>Cost of <paramref name="tokens"/> generated tokens.</summary>
    public double Output(int tokens) => OutputWeight * Math.Max(0, tokens);
}
