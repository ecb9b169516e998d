using System.IO.Compression;
using System.Reflection;
using System.Text;
using Microsoft.ML.Tokenizers;

namespace Llm.Prompt.Tokenization;

/// <summary>
/// OpenAI's tiktoken encodings by name (<c>o200k_base</c>: GPT-4o / o-series; <c>cl100k_base</c>: GPT-4 / GPT-3.5)
/// through Microsoft.ML.Tokenizers' <see cref="TiktokenTokenizer"/>, with the ranks its data packages embed (nothing
/// is downloaded). Ids are the encodings' own; special tokens in the text (<c>&lt;|endoftext|&gt;</c>) are encoded as
/// their special ids. One instance per encoding per process (loading a vocabulary takes a few hundred milliseconds).
/// </summary>
public sealed class TiktokenEncoding : ITokenizer
{
    /// <summary>The encodings served by name.</summary>
    public static readonly IReadOnlyList<string> Names = ["o200k_base", "cl100k_base"];

    private static readonly Lazy<TiktokenEncoding> s_o200k = new(() => new("o200k_base"));
    private static readonly Lazy<TiktokenEncoding> s_cl100k = new(() => new("cl100k_base"));

    private readonly TiktokenTokenizer _tokenizer;

    private TiktokenEncoding(string name)
    {
        Name = name;
        _tokenizer = TiktokenTokenizer.CreateForEncoding(name);
    }

    /// <summary>The encoding named <paramref name="name"/> (one of <see cref="Names"/>), loaded once.</summary>
    public static TiktokenEncoding Get(string name) => name switch
    {
        "o200k_base" => s_o200k.Value,
        "cl100k_base" => s_cl100k.Value,
        _ => throw new ArgumentException($"unknown tiktoken encoding '{name}': expected one of {string.Join(", ", Names)}", nameof(name)),
    };

    /// <summary>Whether <paramref name="name"/> is one of <see cref="Names"/>.</summary>
    public static bool IsName(string? name) => name is "o200k_base" or "cl100k_base";

    /// <summary>
    /// The encoding's ranks as a standard <c>.tiktoken</c> file (<c>base64(token bytes) rank</c> lines), from the copy
    /// the data package embeds (deflated, a <c>Capacity: N</c> line, then one base64 token per line, the rank being
    /// its position): the same vocabulary for <see cref="Tokenizers.FromTiktoken"/>, so the two implementations can
    /// be compared id by id.
    /// </summary>
    public static Stream OpenRanks(string name)
    {
        string assembly = name switch
        {
            "o200k_base" => "Microsoft.ML.Tokenizers.Data.O200kBase",
            "cl100k_base" => "Microsoft.ML.Tokenizers.Data.Cl100kBase",
            _ => throw new ArgumentException($"unknown tiktoken encoding '{name}'", nameof(name)),
        };
        using var resource = Assembly.Load(assembly).GetManifestResourceStream(name + ".tiktoken.deflate")
            ?? throw new InvalidOperationException($"{assembly} has no {name}.tiktoken.deflate resource");
        using var reader = new StreamReader(new DeflateStream(resource, CompressionMode.Decompress), Encoding.ASCII);
        var text = new StringBuilder(4 << 20);
        int rank = 0;
        while (reader.ReadLine() is { } line)
        {
            if (line.Length == 0 || line.StartsWith("Capacity:", StringComparison.Ordinal))
            {
                continue;
            }

            text.Append(line).Append(' ').Append(rank++).Append('\n');
        }

        return new MemoryStream(Encoding.ASCII.GetBytes(text.ToString()), writable: false);
    }

    /// <inheritdoc />
    public string Name { get; }

    /// <summary>The underlying Microsoft.ML.Tokenizers tokenizer (decoding, offsets).</summary>
    public TiktokenTokenizer Tokenizer => _tokenizer;

    /// <inheritdoc />
    public void Encode(ReadOnlySpan<char> text, List<int> tokens)
    {
        ArgumentNullException.ThrowIfNull(tokens);
        tokens.AddRange(_tokenizer.EncodeToIds(text));
    }

    /// <inheritdoc />
    public int CountTokens(ReadOnlySpan<char> text) => _tokenizer.CountTokens(text);
}
