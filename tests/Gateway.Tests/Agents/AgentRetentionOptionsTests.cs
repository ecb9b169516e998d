using Gateway.Agents;
using Gateway.Core.Agents;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Gateway.Tests.Agents;

/// <summary>The predictive policy's knobs from config (<c>Gateway:Agents:MemoryCostWeight</c> / <c>PinBudgetFraction</c>).</summary>
public sealed class AgentRetentionOptionsTests
{
    private static AgentRetentionService Create(AgentRetentionOptions o) =>
        new(Options.Create(o), TimeProvider.System, NullLogger<AgentRetentionService>.Instance);

    [Fact]
    public void PolicyOptions_UnsetKnobs_AreThePolicyDefaults_SetOnesArePassedThrough()
    {
        Assert.Equal(new RetentionOptions().MemoryCostWeight, new AgentRetentionOptions().PolicyOptions().MemoryCostWeight);
        Assert.Equal(new RetentionOptions().PinBudgetFraction, new AgentRetentionOptions().PolicyOptions().PinBudgetFraction);
        Assert.Equal(new RetentionOptions().MaxRenewals, new AgentRetentionOptions().PolicyOptions().MaxRenewals);
        Assert.Equal(EvictionAgeMode.Off, new AgentRetentionOptions().PolicyOptions().EvictionAge);
        Assert.True(new AgentRetentionOptions().PolicyOptions().PinGuard);
        Assert.False(new AgentRetentionOptions().PolicyOptions().HbmPins);
        var o = new AgentRetentionOptions { MemoryCostWeight = 0.1, PinBudgetFraction = 0.25, MaxRenewals = 3, EvictionAge = "shift", PinGuard = false, HbmPins = true }.PolicyOptions();
        Assert.Equal(EvictionAgeMode.Shift, o.EvictionAge);
        Assert.False(o.PinGuard);
        Assert.True(o.HbmPins);
        Assert.Equal(0.1, o.MemoryCostWeight);
        Assert.Equal(0.25, o.PinBudgetFraction);
        Assert.Equal(3, o.MaxRenewals);
    }

    [Fact]
    public void SingleTurnIdleTimeout_IsPassedToThePolicy_BesideTheSessionIdleTimeout()
    {
        var defaults = new AgentRetentionOptions().PolicyOptions();
        Assert.Equal((TimeSpan.FromMinutes(10), TimeSpan.FromSeconds(60)), (defaults.MaxSessionIdle, defaults.MaxSingleTurnIdle));
        var o = new AgentRetentionOptions { SingleTurnIdleTimeout = TimeSpan.FromSeconds(20) }.PolicyOptions();
        Assert.Equal(TimeSpan.FromSeconds(20), o.MaxSingleTurnIdle);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    [InlineData(601)] // longer than the session idle timeout (600 s)
    public void BadSingleTurnIdleTimeout_IsRejectedAtStart(int seconds)
    {
        var e = Assert.Throws<OptionsValidationException>(() => Create(new AgentRetentionOptions { SingleTurnIdleTimeout = TimeSpan.FromSeconds(seconds) }));
        Assert.Contains("Gateway:Agents:SingleTurnIdleTimeout", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void NegativeMaxRenewals_IsRejectedAtStart()
    {
        var e = Assert.Throws<OptionsValidationException>(() => Create(new AgentRetentionOptions { MaxRenewals = -1 }));
        Assert.Contains("Gateway:Agents:MaxRenewals", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void UnknownEvictionAgeMode_IsRejectedAtStart()
    {
        var e = Assert.Throws<OptionsValidationException>(() => Create(new AgentRetentionOptions { EvictionAge = "sometimes" }));
        Assert.Contains("Gateway:Agents:EvictionAge", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(-0.5, null)]
    [InlineData(null, 0.0)]
    [InlineData(null, 1.5)]
    public void BadKnobs_AreRejectedAtStart(double? cost, double? budget)
    {
        var e = Assert.Throws<OptionsValidationException>(() => Create(new AgentRetentionOptions { MemoryCostWeight = cost, PinBudgetFraction = budget }));
        Assert.Contains("Gateway:Agents:", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(-1, 4096.0, 300.0)]
    [InlineData(1001, 4096.0, 300.0)] // beyond the worker protocol's x-request-priority range
    [InlineData(1, double.NaN, 300.0)]
    [InlineData(1, 4096.0, 0.0)]
    public void BadResumedTurnKnobs_AreRejectedAtStart(int priority, double credit, double maxGap)
    {
        var e = Assert.Throws<OptionsValidationException>(() => Create(new AgentRetentionOptions
        {
            ResumedTurnPriority = true,
            ResumedEnginePriority = priority,
            ResumedQueueCredit = credit,
            ResumedMaxGapSeconds = maxGap,
        }));
        Assert.Contains("Gateway:Agents:Resumed", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void GoodKnobs_StartTheService()
    {
        using var s = Create(new AgentRetentionOptions { Mode = "enabled", MemoryCostWeight = 0, PinBudgetFraction = 1 });
        Assert.Equal("predictive", s.PolicyName);
    }
}
