using Llm.Prompt.Hashing;

namespace Worker.Generation;

/// <summary>
/// What a request will "generate", decided up front and deterministically from (seed, prompt): the token pieces,
/// where the visible content ends (a stop string), the finish reason, and an optional tool call. The engine is
/// then asked for exactly <see cref="OutputTokens"/> tokens and the host reveals piece i when the engine emits
/// token i.
/// </summary>
internal sealed class OutputPlan
{
    /// <summary>Text of each generated token (for a tool call: piece 0 is the call header, the rest argument chunks).</summary>
    public required string[] Pieces { get; init; }

    /// <summary>Characters offsets of each piece in the concatenated text.</summary>
    public required int[] Offsets { get; init; }

    /// <summary>Length of the visible content (shorter than the concatenation when a stop string cut it).</summary>
    public required int ContentLength { get; init; }

    /// <summary>"stop", "length" or "tool_calls".</summary>
    public required string FinishReason { get; init; }

    /// <summary>The tool call of a tool-call turn (null for a text turn).</summary>
    public ToolCallPlan? ToolCall { get; init; }

    /// <summary>Tokens the engine must generate.</summary>
    public int OutputTokens => Pieces.Length;

    /// <summary>The visible text of token <paramref name="index"/> (empty when it lies past a stop cut).</summary>
    public string VisibleText(int index)
    {
        if ((uint)index >= (uint)Pieces.Length)
        {
            return "";
        }

        int start = Offsets[index];
        if (start >= ContentLength)
        {
            return "";
        }

        string p = Pieces[index];
        return start + p.Length <= ContentLength ? p : p[..(ContentLength - start)];
    }

    /// <summary>The whole visible content.</summary>
    public string Content()
    {
        var sb = new System.Text.StringBuilder(ContentLength);
        for (int i = 0; i < Pieces.Length; i++)
        {
            sb.Append(VisibleText(i));
        }

        return sb.ToString();
    }
}

/// <summary>A planned tool call: id, function name and the JSON arguments (possibly cut short by max_tokens).</summary>
internal sealed record ToolCallPlan(string Id, string Name, string Arguments);

/// <summary>
/// Builds <see cref="OutputPlan"/>s. Text is words from a fixed list of short English words, one token per word
/// under the default tokenizer (a word of at most five letters with its leading space is one piece), with a period
/// every 6–17 words; so <c>completion_tokens</c> equals what the gateway's tokenizer counts in the content.
/// Lengths without max_tokens are log-normal (median, sigma, cap from <see cref="WorkerOptions"/>).
/// </summary>
internal sealed class OutputPlanner
{
    private static readonly string[] Words =
    [
        "the", "a", "of", "and", "to", "in", "is", "it", "that", "for", "on", "as", "with", "was", "by", "at", "be", "this",
        "from", "or", "an", "are", "not", "which", "but", "all", "we", "can", "has", "more", "will", "one", "its", "new",
        "data", "model", "cache", "token", "block", "queue", "route", "load", "time", "fast", "small", "large", "first",
        "last", "next", "each", "other", "some", "many", "most", "such", "when", "where", "while", "after", "under",
        "over", "then", "than", "also", "only", "both", "very", "just", "every", "same", "plan", "run", "step", "batch",
        "node", "path", "tree", "key", "value", "store", "read", "write", "send", "reply", "ask", "tool", "call", "agent",
        "task", "work", "goal", "state", "event", "rate", "cost", "share", "fair", "hit", "miss", "warm", "cold", "fresh",
        "clear", "open", "close", "start", "stop", "wait", "ready", "early", "late", "long", "short", "high", "low",
        "good", "best", "right", "left", "light", "heavy", "quiet", "busy", "calm", "deep", "wide", "round", "still",
        "water", "river", "stone", "cloud", "field", "night", "house", "city", "road", "world", "place", "group",
        "point", "line", "part", "case", "fact", "idea", "story", "note", "page", "word", "list", "table", "chart", "image",
    ];

    private readonly WorkerOptions _options;

    public OutputPlanner(WorkerOptions options) => _options = options;

    /// <summary>Seed of a request: (seed, prompt) hashed together.</summary>
    public static ulong SeedOf(long seed, string promptText) => TextHash.Utf8XxHash64(promptText, unchecked((ulong)seed) ^ 0xC0FFEE5EEDUL);

    /// <summary>Draws the output length of a request without max_tokens.</summary>
    public int DrawLength(ulong seed, int cap)
    {
        var rng = new DeterministicRandom(seed ^ 0x1E6E7UL);
        double len = _options.OutputLengthMedian * Math.Exp(_options.OutputLengthSigma * rng.NextGaussian());
        int n = (int)Math.Round(len);
        return Math.Clamp(n, 1, Math.Max(1, Math.Min(cap, _options.OutputLengthMax)));
    }

    /// <summary>Plans a text turn.</summary>
    /// <param name="seed">Request seed from <see cref="SeedOf"/>.</param>
    /// <param name="maxTokens">The request's max_tokens (null: drawn length, finish "stop"; else exactly that many, finish
    /// "length", or with <see cref="WorkerOptions.MaxTokensAsCap"/> the drawn length cut at max_tokens).</param>
    /// <param name="cap">Tokens the context still has room for.</param>
    /// <param name="stop">Stop strings.</param>
    public OutputPlan PlanText(ulong seed, int? maxTokens, int cap, IReadOnlyList<string> stop)
    {
        int n;
        string finish;
        if (maxTokens is int m && _options.MaxTokensAsCap)
        {
            // As a model does: the answer has its own length and max_tokens only cuts it.
            int drawn = DrawLength(seed, cap);
            n = Math.Min(drawn, m);
            finish = drawn > m ? "length" : "stop";
        }
        else
        {
            n = maxTokens is int exact ? Math.Min(exact, cap) : DrawLength(seed, cap);
            finish = maxTokens is null ? "stop" : "length";
        }

        n = Math.Max(1, n);
        var pieces = new string[n];
        var rng = new DeterministicRandom(seed);
        int untilPeriod = 6 + rng.Next(12);
        bool capital = true;
        for (int i = 0; i < n; i++)
        {
            if (untilPeriod == 0 && i > 0)
            {
                pieces[i] = ".";
                capital = true;
                untilPeriod = 6 + rng.Next(12);
                continue;
            }

            string w = Words[rng.Next(Words.Length)];
            if (capital)
            {
                w = char.ToUpperInvariant(w[0]) + w[1..];
                capital = false;
            }

            pieces[i] = i == 0 ? w : " " + w;
            untilPeriod--;
        }

        var offsets = Offsets(pieces, out int total);
        int contentLength = total;
        if (stop.Count > 0)
        {
            string text = string.Concat(pieces);
            int cut = -1;
            int cutEnd = -1;
            foreach (var s in stop)
            {
                if (s.Length == 0)
                {
                    continue;
                }

                int at = text.IndexOf(s, StringComparison.Ordinal);
                if (at >= 0 && (cut < 0 || at < cut))
                {
                    cut = at;
                    cutEnd = at + s.Length;
                }
            }

            if (cut >= 0)
            {
                // Generation runs until the token that completes the stop string; the stop string itself is not shown.
                int last = PieceAt(offsets, cutEnd - 1);
                Array.Resize(ref pieces, last + 1);
                Array.Resize(ref offsets, last + 1);
                contentLength = cut;
                finish = "stop";
            }
        }

        return new OutputPlan { Pieces = pieces, Offsets = offsets, ContentLength = contentLength, FinishReason = finish };
    }

    /// <summary>
    /// Plans a tool-call turn: piece 0 carries the call (id, name), the arguments follow in chunks of up to four
    /// characters, one token each. max_tokens below that cuts the arguments (finish "length", as OpenAI does).
    /// </summary>
    public static OutputPlan PlanToolCall(ulong seed, string functionName, string arguments, int? maxTokens, int cap)
    {
        var list = new List<string> { "" };
        for (int i = 0; i < arguments.Length; i += 4)
        {
            list.Add(arguments.Substring(i, Math.Min(4, arguments.Length - i)));
        }

        int limit = Math.Max(1, Math.Min(maxTokens ?? int.MaxValue, cap));
        string finish = "tool_calls";
        if (list.Count > limit)
        {
            list.RemoveRange(limit, list.Count - limit);
            finish = "length";
        }

        var pieces = list.ToArray();
        var offsets = Offsets(pieces, out int total);
        string id = "call_" + seed.ToString("x16", System.Globalization.CultureInfo.InvariantCulture)[..12];
        return new OutputPlan
        {
            Pieces = pieces, Offsets = offsets, ContentLength = total, FinishReason = finish,
            ToolCall = new ToolCallPlan(id, functionName, string.Concat(pieces)),
        };
    }

    private static int[] Offsets(string[] pieces, out int total)
    {
        var offsets = new int[pieces.Length];
        total = 0;
        for (int i = 0; i < pieces.Length; i++)
        {
            offsets[i] = total;
            total += pieces[i].Length;
        }

        return offsets;
    }

    private static int PieceAt(int[] offsets, int charIndex)
    {
        int i = Array.BinarySearch(offsets, charIndex);
        if (i < 0)
        {
            i = ~i - 1;
        }

        // Zero-length pieces share an offset with the next one: take the last piece starting at or before the index.
        while (i + 1 < offsets.Length && offsets[i + 1] <= charIndex)
        {
            i++;
        }

        return Math.Max(0, i);
    }
}
