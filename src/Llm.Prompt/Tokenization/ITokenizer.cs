namespace Llm.Prompt.Tokenization;

/// <summary>Turns text into token ids. Implementations are immutable and thread-safe.</summary>
public interface ITokenizer
{
    /// <summary>Short name, e.g. "default" or "bpe:tokenizer.json".</summary>
    string Name { get; }

    /// <summary>Appends the tokens of <paramref name="text"/> to <paramref name="tokens"/>.</summary>
    void Encode(ReadOnlySpan<char> text, List<int> tokens);

    /// <summary>Number of tokens <paramref name="text"/> encodes to.</summary>
    int CountTokens(ReadOnlySpan<char> text);
}
