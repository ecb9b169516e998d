using Gateway.Configuration;

namespace Gateway.Tests.Configuration;

/// <summary>Gateway:Scheduling knobs of the reserved capacity are checked at startup.</summary>
public class SchedulingOptionsValidationTests
{
    [Fact]
    public void ReservedSlots_Defaults_AreValid_NegativeOrNonPositiveFactor_AreRejected()
    {
        var ok = new GatewayOptions();
        Assert.Equal(1, ok.Scheduling.ReservedSlots);
        Assert.Equal(1.5, ok.Scheduling.OverShareFactor);
        Assert.DoesNotContain(new GatewayOptionsValidator().Validate(null, ok).Failures ?? [], f => f.Contains("ReservedSlots", StringComparison.Ordinal));

        foreach (var (slots, factor) in new[] { (-1, 1.5), (1, 0.0), (1, double.NaN), (1, double.PositiveInfinity) })
        {
            var bad = new GatewayOptions();
            bad.Scheduling.ReservedSlots = slots;
            bad.Scheduling.OverShareFactor = factor;
            Assert.Contains(new GatewayOptionsValidator().Validate(null, bad).Failures ?? [], f => f.Contains("ReservedSlots", StringComparison.Ordinal));
        }
    }
}
