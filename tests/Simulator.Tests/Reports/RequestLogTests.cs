using Simulator.Reports;
using Simulator.Simulation;

namespace Simulator.Tests.Reports;

public class RequestLogTests
{
    [Fact]
    public void Csv_OneRowPerRequest_QuotesSessionIdsWithCommas()
    {
        var record = new RequestRecord("a,b", 3, "t", 10, 10.25, 20, 0, 1000, 16, 5, false) { QueuedPrefillAtDispatch = 7, Reason = "spill" };
        var csv = RequestLog.ToCsv([record]);
        var lines = csv.TrimEnd('\n').Split('\n');
        Assert.Equal(RequestLog.CsvHeader, lines[0]);
        Assert.StartsWith("\"a,b\",3,t,10.0000,", lines[1], StringComparison.Ordinal);
        Assert.Contains(",spill,7,1000,0,16,5,250.0,0", lines[1], StringComparison.Ordinal);
    }
}
