using Gateway.Fleet;

namespace Gateway.Tests.Fleet;

public sealed class WorkerEndpointTests
{
    [Fact]
    public void ProbeSuccess_SentBeforeAConnectFailure_DoesNotMakeTheWorkerHealthyAgain()
    {
        var e = new WorkerEndpoint(new Uri("http://127.0.0.1:9"), 0, TimeProvider.System);
        e.OnProbe(ok: true, unhealthyThreshold: 2);
        Assert.True(e.Info.Healthy);

        long probeSent = Now();
        WaitForClockToMove(probeSent);
        e.OnRequestFailure(connectFailure: true, passiveThreshold: 3);
        Assert.False(e.Info.Healthy);

        e.OnProbe(ok: true, unhealthyThreshold: 2, startedTicks: probeSent); // answered, but before the failure
        Assert.False(e.Info.Healthy);

        long fresh = Now();
        e.OnProbe(ok: true, unhealthyThreshold: 2, startedTicks: fresh);
        Assert.True(e.Info.Healthy);
    }

    private static long Now() => TimeProvider.System.GetUtcNow().UtcTicks;

    private static void WaitForClockToMove(long from)
    {
        for (int i = 0; i < 1_000_000 && Now() <= from; i++)
        {
            Thread.SpinWait(10);
        }
    }
}
