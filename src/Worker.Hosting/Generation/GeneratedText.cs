using System.Text;
using Llm.Prompt.Tokenization;
using Worker.Engine;

namespace Worker.Generation;

/// <summary>
/// The text of a request whose tokens a real backend computes: byte tokens are decoded as they arrive with a streaming
/// UTF-8 decoder (a character split across tokens is emitted whole, once complete; invalid bytes become U+FFFD; special
/// tokens such as the end-of-sequence token print nothing). Counts the tokens (usage) and keeps the finish reason.
/// <para>
/// Stop sequences (OpenAI <c>stop</c>, as vLLM applies them): the text ends before the first occurrence of any of them,
/// the stop string itself is not returned, and the finish reason is <c>stop</c>. While streaming, a tail of the text
/// that could still grow into a stop string is held back until the next token decides it, so no byte of a stop string
/// is ever sent.
/// </para>
/// </summary>
internal sealed class GeneratedText(IReadOnlyList<string>? stops = null)
{
    private readonly Utf8StreamDecoder _decoder = new();
    private readonly StringBuilder _text = new();
    private readonly IReadOnlyList<string> _stops = stops is null ? [] : [.. stops.Where(s => s.Length > 0)];
    private int _emitted; // characters of _text already returned by Append/Finish

    /// <summary>Tokens generated so far (the end-of-sequence token included, as vLLM counts it).</summary>
    public int Tokens { get; private set; }

    /// <summary>"stop" (end-of-sequence token or a stop sequence) or "length" (max_tokens) once finished.</summary>
    public string FinishReason { get; private set; } = "length";

    /// <summary>True once a stop sequence matched: the text is final and the engine need not generate more.</summary>
    public bool Stopped { get; private set; }

    public string Text => _text.ToString();

    /// <summary>
    /// Adds token <paramref name="id"/>; returns the text that can be sent now (often empty: mid-character, or a tail that
    /// may be the start of a stop string). After <see cref="Stopped"/> becomes true, further tokens are ignored.
    /// </summary>
    public string Append(int id)
    {
        if (Stopped)
        {
            return "";
        }

        Tokens++;
        _text.Append(_decoder.Append(id));
        return Release(final: false);
    }

    /// <summary>Ends the stream; returns what is left to send (a held-back tail, or U+FFFD for a cut final character).</summary>
    public string Finish(FinishReason reason)
    {
        if (Stopped)
        {
            return "";
        }

        FinishReason = reason == Engine.FinishReason.Stop ? "stop" : "length";
        _text.Append(_decoder.Flush());
        return Release(final: true);
    }

    // Checks the new text for a stop string and returns what is safe to send.
    private string Release(bool final)
    {
        int limit = _text.Length;
        if (_stops.Count > 0)
        {
            string text = _text.ToString();
            int longest = 0;
            int cut = -1;
            foreach (string stop in _stops)
            {
                longest = Math.Max(longest, stop.Length);

                // A match can only start where it still overlaps the unsent text (earlier ones were found before).
                int from = Math.Max(0, _emitted - stop.Length + 1);
                int at = text.IndexOf(stop, from, StringComparison.Ordinal);
                if (at >= 0 && (cut < 0 || at < cut))
                {
                    cut = at;
                }
            }

            if (cut >= 0)
            {
                Stopped = true;
                FinishReason = "stop";
                _text.Length = cut;
                limit = cut;
            }
            else if (!final)
            {
                limit = text.Length - HeldBack(text, longest);
            }
        }

        if (limit <= _emitted)
        {
            return "";
        }

        string piece = _text.ToString(_emitted, limit - _emitted);
        _emitted = limit;
        return piece;
    }

    // Length of the longest suffix of the unsent text that is a proper prefix of some stop string.
    private int HeldBack(string text, int longest)
    {
        int max = Math.Min(longest - 1, text.Length - _emitted);
        for (int n = max; n > 0; n--)
        {
            var tail = text.AsSpan(text.Length - n);
            foreach (string stop in _stops)
            {
                if (stop.Length > n && stop.AsSpan(0, n).SequenceEqual(tail))
                {
                    return n;
                }
            }
        }

        return 0;
    }
}
