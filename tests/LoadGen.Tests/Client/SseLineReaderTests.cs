using System.Text;
using LoadGen.Client;

namespace LoadGen.Tests.Client;

public class SseLineReaderTests
{
    [Fact]
    public async Task ReadLineAsync_SplitsLfAndCrlfAndReturnsTheUnterminatedTail()
    {
        var reader = new SseLineReader(new MemoryStream(Encoding.UTF8.GetBytes("data: a\r\n\ndata: b\npartial")));
        var lines = new List<string>();
        while (await reader.ReadLineAsync(CancellationToken.None) is { } line)
        {
            lines.Add(Encoding.UTF8.GetString(line.Span));
        }

        Assert.Equal(["data: a", "", "data: b", "partial"], lines);
    }

    [Fact]
    public async Task ReadLineAsync_LineLongerThanTheBuffer_Grows()
    {
        string big = new('x', 100_000);
        var reader = new SseLineReader(new MemoryStream(Encoding.UTF8.GetBytes("data: " + big + "\n")));
        var line = await reader.ReadLineAsync(CancellationToken.None);
        Assert.Equal(6 + big.Length, line!.Value.Length);
        Assert.Null(await reader.ReadLineAsync(CancellationToken.None));
    }
}
