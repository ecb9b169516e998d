using System.Text;
using Gateway.Core.Hashing;

namespace Gateway.Core.Tests.Hashing;

public class XxHash64Tests
{
    // Reference values printed by Debian's `xxhsum -H1` (xxHash 0.8) for the same bytes, seed 0.
    [Theory]
    [InlineData("", 0xEF46DB3751D8E999UL)]
    [InlineData("a", 0xD24EC4F1A98C6E5BUL)]
    [InlineData("abc", 0x44BC2CF5AD770999UL)]
    [InlineData("Nobody inspects the spammish repetition", 0xFBCEA83C8A378BF1UL)]
    [InlineData("The quick brown fox jumps over the lazy dog", 0x0B242D361FDA71BCUL)]
    [InlineData("0123456789abcdef0123456789abcdef0123456789", 0xA76190C3ACF08A1CUL)]
    public void Hash_MatchesReferenceImplementation(string input, ulong expected)
    {
        Assert.Equal(expected, XxHash64.Hash(Encoding.UTF8.GetBytes(input)));
    }

    [Fact]
    public void Hash_SeedChangesResult()
    {
        var data = Encoding.UTF8.GetBytes("abc");
        Assert.NotEqual(XxHash64.Hash(data, 0), XxHash64.Hash(data, 1));
    }

    [Fact]
    public void HashString_EqualsHashOfUtf8Bytes_ShortAndLong()
    {
        string shortText = "héllo wörld";
        string longText = new('x', 5000);
        Assert.Equal(XxHash64.Hash(Encoding.UTF8.GetBytes(shortText)), XxHash64.HashString(shortText));
        Assert.Equal(XxHash64.Hash(Encoding.UTF8.GetBytes(longText)), XxHash64.HashString(longText));
    }
}
