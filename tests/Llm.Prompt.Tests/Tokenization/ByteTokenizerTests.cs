using System.Text;
using Llm.Prompt.Tokenization;

namespace Llm.Prompt.Tests.Tokenization;

public sealed class ByteTokenizerTests
{
    [Fact]
    public void Each_utf8_byte_is_one_token_offset_past_the_three_specials()
    {
        var ids = new List<int>();
        ByteTokenizer.Instance.Encode("Hé€😀", ids);
        var expected = Encoding.UTF8.GetBytes("Hé€😀").Select(b => 3 + b).ToArray();
        Assert.Equal(expected, ids);
        Assert.Equal(1 + 2 + 3 + 4, ids.Count);
        Assert.Equal(ids.Count, ByteTokenizer.Instance.CountTokens("Hé€😀"));
        Assert.Equal(3 + 'H', ids[0]);
    }

    [Fact]
    public void Long_text_crosses_the_encode_buffer_without_losing_or_splitting_bytes()
    {
        string text = string.Concat(Enumerable.Repeat("naïve 😀 text ", 500));
        var ids = new List<int>();
        ByteTokenizer.Instance.Encode(text, ids);
        Assert.Equal(Encoding.UTF8.GetBytes(text).Select(b => 3 + b), ids);
    }

    [Fact]
    public void Create_resolves_names_and_files()
    {
        Assert.Same(ByteTokenizer.Instance, Tokenizers.Create("bytes"));
        Assert.Same(DefaultTokenizer.Instance, Tokenizers.Create("default"));
        Assert.Throws<NotSupportedException>(() => Tokenizers.Create("vocab.txt"));
    }

    [Fact]
    public void Stream_decoder_never_splits_a_character_and_replaces_invalid_bytes()
    {
        string text = "a€😀b";
        var ids = new List<int>();
        ByteTokenizer.Instance.Encode(text, ids);
        var d = new Utf8StreamDecoder();
        var pieces = ids.Select(d.Append).ToList();
        Assert.Equal(["a", "", "", "€", "", "", "", "😀", "b"], pieces);
        Assert.Equal("", d.Flush());

        var bad = new Utf8StreamDecoder();
        string got = string.Concat(new[] { 3 + 0xE2, 3 + 0x28, 3 + 'x', 1, 2, 300 }.Select(bad.Append)) + bad.Flush();
        Assert.Equal("\uFFFD(x", got); // a lead byte cut short by '(' is replaced; specials and filler print nothing

        var cut = new Utf8StreamDecoder();
        Assert.Equal("", cut.Append(3 + 0xF0));
        Assert.Equal("\uFFFD", cut.Flush()); // a truncated final character
    }
}
