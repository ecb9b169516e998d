using Gateway.Core.Tenancy;

namespace Gateway.Core.Tests.Tenancy;

public class PriorityRequestTests
{
    [Theory]
    [InlineData(null, null)]
    [InlineData("", null)]
    [InlineData("interactive", PriorityClass.Interactive)]
    [InlineData(" Batch ", PriorityClass.Batch)]
    public void KnownValuesParse(string? header, PriorityClass? expected)
    {
        Assert.True(PriorityRequest.TryParse(header, out var requested));
        Assert.Equal(expected, requested);
    }

    [Theory]
    [InlineData("urgent")]
    [InlineData("0")]
    public void OtherValuesAreRefused(string header) => Assert.False(PriorityRequest.TryParse(header, out _));

    [Fact]
    public void AnInteractiveTenant_MayAskForBatch()
    {
        Assert.Equal(PriorityClass.Batch, PriorityRequest.Effective(PriorityClass.Interactive, PriorityClass.Batch));
        Assert.Equal(PriorityClass.Interactive, PriorityRequest.Effective(PriorityClass.Interactive, null));
    }

    [Fact]
    public void ABatchTenant_AskingForInteractive_IsClampedToBatch()
    {
        Assert.Equal(PriorityClass.Batch, PriorityRequest.Effective(PriorityClass.Batch, PriorityClass.Interactive));
    }
}
