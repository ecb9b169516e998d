using System.IO.Hashing;
using System.Text;
using Llm.Prompt.Hashing;

namespace Llm.Prompt.Tests.Hashing;

public class TextHashTests
{
    // Reference values printed by Debian's `xxhsum -H1` (xxHash 0.8) for the same bytes, seed 0: the hash that
    // names blocks, salts and sessions is the standard XXH64, so other implementations can reproduce it.
    [Theory]
    [InlineData("", 0xEF46DB3751D8E999UL)]
    [InlineData("a", 0xD24EC4F1A98C6E5BUL)]
    [InlineData("abc", 0x44BC2CF5AD770999UL)]
    [InlineData("Nobody inspects the spammish repetition", 0xFBCEA83C8A378BF1UL)]
    [InlineData("The quick brown fox jumps over the lazy dog", 0x0B242D361FDA71BCUL)]
    [InlineData("0123456789abcdef0123456789abcdef0123456789", 0xA76190C3ACF08A1CUL)]
    public void Utf8XxHash64_MatchesXxhsum(string input, ulong expected)
    {
        Assert.Equal(expected, TextHash.Utf8XxHash64(input));
    }

    [Fact]
    public void Utf8XxHash64_SeedChangesResult()
    {
        Assert.NotEqual(TextHash.Utf8XxHash64("abc", 0), TextHash.Utf8XxHash64("abc", 1));
    }

    [Fact]
    public void Utf8XxHash64_EqualsXxHash64OfUtf8Bytes_ShortAndLong_WithHighBitSeed()
    {
        const ulong seed = 0xC0FFEE5EEDUL ^ 0x8000_0000_0000_0000UL;
        foreach (string text in new[] { "héllo wörld", new string('x', 5000) })
        {
            Assert.Equal(XxHash64.HashToUInt64(Encoding.UTF8.GetBytes(text), unchecked((long)seed)), TextHash.Utf8XxHash64(text, seed));
        }
    }
}
