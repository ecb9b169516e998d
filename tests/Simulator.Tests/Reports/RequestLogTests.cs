using Simulator.Reports;
using Simulator.Simulation;

namespace Simulator.Tests.Reports;

public class RequestLogTests
{
    private static RequestRecord Rec(string session, int turn, int cached, long queued, double ttft, string reason = "load", bool rejected = false) =>
        new(session, turn, "t", 10, 10 + ttft, 20, 0, 1000, cached, 5, rejected) { QueuedPrefillAtDispatch = queued, Reason = reason };

    [Fact]
    public void Csv_OneRowPerRequest_QuotesSessionIdsWithCommas()
    {
        var csv = RequestLog.ToCsv([Rec("a,b", 3, cached: 16, queued: 7, ttft: 0.25, reason: "spill")]);
        var lines = csv.TrimEnd('\n').Split('\n');
        Assert.Equal(RequestLog.CsvHeader, lines[0]);
        Assert.StartsWith("\"a,b\",3,t,10.0000,", lines[1], StringComparison.Ordinal);
        Assert.Contains(",spill,7,1000,0,16,5,250.0,0", lines[1], StringComparison.Ordinal);
    }
}
