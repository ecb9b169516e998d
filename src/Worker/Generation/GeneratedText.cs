using System.Text;
using Gateway.Core.Tokenization;
using Worker.Engine;

namespace Worker.Generation;

/// <summary>
/// The text of a request whose tokens a real backend computes: byte tokens are decoded as they arrive with a streaming
/// UTF-8 decoder (a character split across tokens is emitted whole, once complete; invalid bytes become U+FFFD; special
/// tokens such as the end-of-sequence token print nothing). Counts the tokens (usage) and keeps the finish reason.
/// </summary>
internal sealed class GeneratedText
{
    private readonly Utf8StreamDecoder _decoder = new();
    private readonly StringBuilder _text = new();

    /// <summary>Tokens generated so far (the end-of-sequence token included, as vLLM counts it).</summary>
    public int Tokens { get; private set; }

    /// <summary>"stop" (end-of-sequence token) or "length" (max_tokens) once finished.</summary>
    public string FinishReason { get; private set; } = "length";

    public string Text => _text.ToString();

    /// <summary>Adds token <paramref name="id"/>; returns the text it completes (often empty mid-character).</summary>
    public string Append(int id)
    {
        Tokens++;
        string piece = _decoder.Append(id);
        _text.Append(piece);
        return piece;
    }

    /// <summary>Ends the stream; returns what a cut final character leaves (U+FFFD or empty).</summary>
    public string Finish(FinishReason reason)
    {
        FinishReason = reason == Engine.FinishReason.Stop ? "stop" : "length";
        string rest = _decoder.Flush();
        _text.Append(rest);
        return rest;
    }
}
