namespace Llm.Prompt.Tokenization;

/// <summary>Knobs of the BPE loaders (<see cref="Tokenizers"/>).</summary>
public sealed class BpeOptions
{
    /// <summary>
    /// Pre-tokenizer regex (.NET syntax). Null: a <c>tokenizer.json</c> uses its own pre-tokenizer,
    /// a <c>.tiktoken</c> file <see cref="BpePatterns.Cl100k"/>.
    /// </summary>
    public string? Pattern { get; init; }

    /// <summary>Special tokens to add (content → id); a <c>.tiktoken</c> file lists none of its own.</summary>
    public IReadOnlyDictionary<string, int>? SpecialTokens { get; init; }

    /// <summary>Most pieces kept in the per-piece cache before it is cleared.</summary>
    public int CacheCapacity { get; init; } = 65_536;
}

/// <summary>Pre-tokenizer patterns of well-known byte-level BPE vocabularies, in .NET regex syntax.</summary>
public static class BpePatterns
{
    /// <summary>GPT-2 (also the Hugging Face ByteLevel pre-tokenizer with <c>use_regex: true</c>).</summary>
    public const string Gpt2 = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    /// <summary>cl100k_base (GPT-3.5/4), also used by Llama 3's <c>tokenizer.json</c>.</summary>
    public const string Cl100k = @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
}
