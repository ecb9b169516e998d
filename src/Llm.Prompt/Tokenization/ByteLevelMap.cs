namespace Llm.Prompt.Tokenization;

/// <summary>
/// GPT-2's reversible byte ↔ unicode mapping (openai/gpt-2 encoder.py <c>bytes_to_unicode</c>, used by every
/// Hugging Face byte-level BPE <c>tokenizer.json</c>): printable Latin-1 bytes map to themselves, the other 68
/// bytes to U+0100.. in byte order, so every byte string is a printable string and vocab entries are text.
/// </summary>
public static class ByteLevelMap
{
    private static readonly char[] ByteToChar = BuildByteToChar();
    private static readonly short[] CharToByte = BuildCharToByte(ByteToChar);

    /// <summary>The character that stands for <paramref name="b"/>.</summary>
    public static char ToChar(byte b) => ByteToChar[b];

    /// <summary>The byte a mapped character stands for, or -1 when <paramref name="c"/> is not a mapped character.</summary>
    public static int ToByte(char c) => c < CharToByte.Length ? CharToByte[c] : -1;

    /// <summary>Decodes a byte-level vocabulary string into its bytes; false when a character is not mapped.</summary>
    public static bool TryDecode(string mapped, out byte[] bytes)
    {
        bytes = new byte[mapped.Length];
        for (int i = 0; i < mapped.Length; i++)
        {
            int b = ToByte(mapped[i]);
            if (b < 0)
            {
                bytes = [];
                return false;
            }

            bytes[i] = (byte)b;
        }

        return true;
    }

    /// <summary>Encodes bytes as their byte-level string.</summary>
    public static string Encode(ReadOnlySpan<byte> bytes)
    {
        return string.Create(bytes.Length, bytes.ToArray(), static (dst, src) =>
        {
            for (int i = 0; i < src.Length; i++)
            {
                dst[i] = ByteToChar[src[i]];
            }
        });
    }

    private static bool IsPrintable(int b) => (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);

    private static char[] BuildByteToChar()
    {
        var map = new char[256];
        int n = 0;
        for (int b = 0; b < 256; b++)
        {
            map[b] = IsPrintable(b) ? (char)b : (char)(256 + n++);
        }

        return map;
    }

    private static short[] BuildCharToByte(char[] byteToChar)
    {
        var inverse = new short[256 + 68];
        Array.Fill(inverse, (short)-1);
        for (int b = 0; b < 256; b++)
        {
            inverse[byteToChar[b]] = (short)b;
        }

        return inverse;
    }
}
