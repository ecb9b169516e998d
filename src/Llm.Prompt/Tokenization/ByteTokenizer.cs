using System.Text;

namespace Llm.Prompt.Tokenization;

/// <summary>
/// Byte-level tokenizer of the CPU backend's models (the vocabulary <c>RandomLlamaGguf</c> writes): each UTF-8 byte
/// <c>b</c> of the text is token <c>FirstByteId + b</c>, after the specials 0 &lt;unk&gt;, 1 &lt;s&gt;, 2 &lt;/s&gt;.
/// No merges, no BOS added. The gateway uses it (routing tokenizer <c>bytes</c>) so its block hashes equal those of
/// a cpu-backend worker, which tokenizes the same rendered prompt the same way. Knob: <see cref="FirstByteId"/> (3).
/// </summary>
public sealed class ByteTokenizer : ITokenizer
{
    /// <summary>Id of byte 0x00 (ids 0..2 are &lt;unk&gt;, &lt;s&gt;, &lt;/s&gt;).</summary>
    public const int FirstByteId = 3;

    /// <summary>Shared instance (stateless).</summary>
    public static readonly ByteTokenizer Instance = new();

    /// <inheritdoc />
    public string Name => "bytes";

    /// <inheritdoc />
    public void Encode(ReadOnlySpan<char> text, List<int> tokens)
    {
        Span<byte> buffer = stackalloc byte[1024];
        var encoder = Encoding.UTF8.GetEncoder();
        while (true)
        {
            encoder.Convert(text, buffer, flush: true, out int charsUsed, out int bytesUsed, out bool completed);
            for (int i = 0; i < bytesUsed; i++)
            {
                tokens.Add(FirstByteId + buffer[i]);
            }

            text = text[charsUsed..];
            if (completed)
            {
                return;
            }
        }
    }

    /// <inheritdoc />
    public int CountTokens(ReadOnlySpan<char> text) => Encoding.UTF8.GetByteCount(text);

    /// <summary>The byte of token <paramref name="id"/>, or -1 for a special or out-of-range id.</summary>
    public static int ByteOf(int id) => id >= FirstByteId && id < FirstByteId + 256 ? id - FirstByteId : -1;
}

/// <summary>
/// Turns a stream of byte tokens back into text one token at a time without ever splitting a character: bytes of an
/// incomplete UTF-8 sequence are held until it completes; an invalid sequence becomes U+FFFD (as
/// <see cref="Encoding.UTF8"/> replaces it). Tokens that are not bytes (specials, filler) produce no text.
/// </summary>
public sealed class Utf8StreamDecoder
{
    private readonly Decoder _decoder = Encoding.UTF8.GetDecoder();
    private readonly char[] _chars = new char[8];

    /// <summary>Text completed by token <paramref name="id"/> (often empty mid-character).</summary>
    public string Append(int id)
    {
        int b = ByteTokenizer.ByteOf(id);
        if (b < 0)
        {
            return "";
        }

        ReadOnlySpan<byte> one = [(byte)b];
        int n = _decoder.GetChars(one, _chars, flush: false);
        return n == 0 ? "" : new string(_chars, 0, n);
    }

    /// <summary>Whatever a truncated final character leaves (U+FFFD), at the end of the stream.</summary>
    public string Flush()
    {
        int n = _decoder.GetChars([], _chars, flush: true);
        return n == 0 ? "" : new string(_chars, 0, n);
    }
}
