namespace Llm.Prompt.Tokenization;

/// <summary>
/// Built-in deterministic tokenizer with realistic counts (about 4.2 characters per token on English
/// prose, close to cl100k/Llama-3 BPE) and no vocabulary file. The rule, applied left to right:
/// <list type="number">
/// <item>a run of letters, with at most one leading space, is cut into pieces of at most 6 characters
///   (the space counts): " quick" is one token, " internationalization" four;</item>
/// <item>a run of digits is cut into pieces of at most 3 digits (as cl100k does);</item>
/// <item>a CJK/Hangul/Kana character is one token;</item>
/// <item>a newline is one token; a run of other whitespace is cut into pieces of at most 4;</item>
/// <item>any other character (punctuation, symbols, emoji) is one token.</item>
/// </list>
/// A token's id is the XXH64 of the piece's UTF-16 code units masked to 31 bits, so ids are stable across
/// processes and machines; distinct pieces collide with probability ~2^-31 per pair, and a block hash covers
/// 16 of them, so a false prefix match is negligible.
/// </summary>
public sealed class DefaultTokenizer : ITokenizer
{
    /// <summary>Shared instance (the type is stateless).</summary>
    public static readonly DefaultTokenizer Instance = new();

    private const int MaxWordPiece = 6;
    private const int MaxDigitPiece = 3;
    private const int MaxSpacePiece = 4;

    /// <inheritdoc />
    public string Name => "default";

    /// <inheritdoc />
    public void Encode(ReadOnlySpan<char> text, List<int> tokens)
    {
        int i = 0;
        while (i < text.Length)
        {
            int len = NextPiece(text, i);
            tokens.Add(IdOf(text.Slice(i, len)));
            i += len;
        }
    }

    /// <inheritdoc />
    public int CountTokens(ReadOnlySpan<char> text)
    {
        int count = 0;
        int i = 0;
        while (i < text.Length)
        {
            i += NextPiece(text, i);
            count++;
        }

        return count;
    }

    /// <summary>Id of one piece.</summary>
    public static int IdOf(ReadOnlySpan<char> piece) =>
        (int)(System.IO.Hashing.XxHash64.HashToUInt64(System.Runtime.InteropServices.MemoryMarshal.AsBytes(piece), 0x70C3) & 0x7FFFFFFF);

    private static int NextPiece(ReadOnlySpan<char> s, int start)
    {
        char c = s[start];
        if (c == ' ' && start + 1 < s.Length && IsWordChar(s[start + 1]))
        {
            return 1 + Run(s, start + 1, MaxWordPiece - 1, IsWordChar);
        }

        if (IsWordChar(c))
        {
            return Run(s, start, MaxWordPiece, IsWordChar);
        }

        if (char.IsAsciiDigit(c))
        {
            return Run(s, start, MaxDigitPiece, char.IsAsciiDigit);
        }

        if (c == '\n')
        {
            return 1;
        }

        if (char.IsWhiteSpace(c))
        {
            return Run(s, start, MaxSpacePiece, static ch => ch != '\n' && char.IsWhiteSpace(ch));
        }

        if (char.IsHighSurrogate(c) && start + 1 < s.Length && char.IsLowSurrogate(s[start + 1]))
        {
            return 2;
        }

        return 1;
    }

    private static int Run(ReadOnlySpan<char> s, int start, int max, Func<char, bool> pred)
    {
        int n = 0;
        while (start + n < s.Length && n < max && pred(s[start + n]))
        {
            n++;
        }

        return Math.Max(n, 1);
    }

    private static bool IsWordChar(char c) => char.IsLetter(c) && !IsCjk(c);

    private static bool IsCjk(char c) =>
        (c >= '\u2E80' && c <= '\u9FFF') || (c >= '\uAC00' && c <= '\uD7AF') || (c >= '\uF900' && c <= '\uFAFF') || (c >= '\u3040' && c <= '\u30FF');
}
