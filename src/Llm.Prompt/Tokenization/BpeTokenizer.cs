using System.Buffers;
using System.Collections.Concurrent;
using System.Text;
using System.Text.RegularExpressions;

namespace Llm.Prompt.Tokenization;

/// <summary>
/// Byte-level BPE (GPT-2 / tiktoken / Hugging Face <c>tokenizers</c> "BPE" model with the ByteLevel pre-tokenizer).
/// <para>Encode: split the text on added/special tokens (each is one id), cut each remaining segment into
/// pieces with the pre-tokenizer regex (or regexes, applied level by level), turn each piece into UTF-8 bytes,
/// start from one token per byte and repeatedly merge the adjacent pair with the lowest rank (leftmost on ties)
/// until no adjacent pair has a merge — the algorithm of tiktoken's <c>byte_pair_merge</c> and of
/// <c>tokenizers</c>' <c>Word::merge_all</c>. Pieces of up to <see cref="ScanLimit"/> tokens use a rank scan
/// over a stack array; longer pieces use a heap so a pathological run costs O(n log n), not O(n²).
/// A bounded, thread-safe cache maps a piece to its ids (looked up by span, no allocation on a hit).</para>
/// <para>Ranks: a <c>tokenizer.json</c>'s merges are ranked by their line; a <c>.tiktoken</c> file has no merges,
/// the rank of a pair is the rank (= id) of the concatenated bytes, as tiktoken does.</para>
/// <para>Knobs (<see cref="BpeOptions"/>): the pre-tokenizer pattern, extra special tokens, cache size.
/// Bytes that have no token of their own get a fallback id above the vocabulary so every input encodes and
/// decodes exactly.</para>
/// Immutable after construction and thread-safe.
/// </summary>
public sealed class BpeTokenizer : ITokenizer
{
    /// <summary>Pieces with at most this many byte tokens use the array scan; longer ones the heap.</summary>
    public const int ScanLimit = 64;

    private const int MaxStackChars = 256;

    private readonly Regex[] _levels;
    private readonly Regex? _addedRegex;
    private readonly Dictionary<string, int> _added;
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _addedLookup;
    private readonly Dictionary<string, int> _vocabByMapped;
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _vocabLookup;
    private readonly Dictionary<ulong, ulong> _merges;
    private readonly int[] _byteIds = new int[256];
    private readonly byte[]?[] _idToBytes;
    private readonly bool _wholePieceFirst;
    private readonly bool _addPrefixSpace;
    private readonly ConcurrentDictionary<string, int[]> _cache = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, int[]>.AlternateLookup<ReadOnlySpan<char>> _cacheLookup;
    private readonly int _cacheCapacity;
    private int _cacheCount;

    internal BpeTokenizer(
        string name,
        Dictionary<string, int> vocabByMapped,
        Dictionary<ulong, ulong> merges,
        Dictionary<string, int> added,
        Regex[] levels,
        bool wholePieceFirst,
        bool addPrefixSpace,
        int cacheCapacity)
    {
        Name = name;
        _vocabByMapped = vocabByMapped;
        _vocabLookup = vocabByMapped.GetAlternateLookup<ReadOnlySpan<char>>();
        _merges = merges;
        _added = added;
        _addedLookup = added.GetAlternateLookup<ReadOnlySpan<char>>();
        _levels = levels;
        _wholePieceFirst = wholePieceFirst;
        _addPrefixSpace = addPrefixSpace;
        _cacheCapacity = cacheCapacity;
        _cacheLookup = _cache.GetAlternateLookup<ReadOnlySpan<char>>();

        int maxId = -1;
        foreach (var kv in vocabByMapped)
        {
            maxId = Math.Max(maxId, kv.Value);
        }

        foreach (var kv in added)
        {
            maxId = Math.Max(maxId, kv.Value);
        }

        // Every byte needs a token; a vocabulary without one gets a fallback id above all others.
        int next = maxId + 1;
        for (int b = 0; b < 256; b++)
        {
            Span<char> one = [ByteLevelMap.ToChar((byte)b)];
            if (_vocabLookup.TryGetValue(one, out int id))
            {
                _byteIds[b] = id;
            }
            else
            {
                _byteIds[b] = next++;
                FallbackByteTokens++;
            }
        }

        _idToBytes = new byte[]?[next];
        foreach (var kv in vocabByMapped)
        {
            if (ByteLevelMap.TryDecode(kv.Key, out byte[] bytes))
            {
                _idToBytes[kv.Value] = bytes;
            }
        }

        for (int b = 0; b < 256; b++)
        {
            _idToBytes[_byteIds[b]] ??= [(byte)b];
        }

        foreach (var kv in added)
        {
            _idToBytes[kv.Value] = Encoding.UTF8.GetBytes(kv.Key);
        }

        if (added.Count > 0)
        {
            var contents = new List<string>(added.Keys);
            contents.Sort(static (a, b) => b.Length != a.Length ? b.Length.CompareTo(a.Length) : string.CompareOrdinal(a, b));
            var alternation = new StringBuilder();
            foreach (string c in contents)
            {
                if (alternation.Length > 0)
                {
                    alternation.Append('|');
                }

                alternation.Append(Regex.Escape(c));
            }

            _addedRegex = new Regex(alternation.ToString(), RegexOptions.Compiled | RegexOptions.CultureInvariant);
        }
    }

    /// <inheritdoc />
    public string Name { get; }

    /// <summary>Number of ids (vocabulary, added tokens and byte fallbacks); ids are in [0, IdCount).</summary>
    public int IdCount => _idToBytes.Length;

    /// <summary>Number of merge rules (for a <c>.tiktoken</c> file: the pairs implied by its ranks).</summary>
    public int MergeCount => _merges.Count;

    /// <summary>How many of the 256 bytes had no token and got a fallback id.</summary>
    public int FallbackByteTokens { get; }

    /// <summary>Id of byte <paramref name="b"/> on its own.</summary>
    public int ByteTokenId(byte b) => _byteIds[b];

    /// <summary>Id of an added/special token, or -1.</summary>
    public int AddedTokenId(string content) => _added.TryGetValue(content, out int id) ? id : -1;

    /// <inheritdoc />
    public void Encode(ReadOnlySpan<char> text, List<int> tokens)
    {
        ArgumentNullException.ThrowIfNull(tokens);
        EncodeCore(text, tokens);
    }

    /// <inheritdoc />
    public int CountTokens(ReadOnlySpan<char> text) => EncodeCore(text, null);

    /// <summary>Bytes of the given ids concatenated.</summary>
    public byte[] DecodeBytes(ReadOnlySpan<int> ids)
    {
        var buffer = new ArrayBufferWriter<byte>(Math.Max(16, ids.Length * 4));
        foreach (int id in ids)
        {
            byte[]? bytes = (uint)id < (uint)_idToBytes.Length ? _idToBytes[id] : null;
            if (bytes is null)
            {
                throw new ArgumentOutOfRangeException(nameof(ids), $"token id {id} is not in this vocabulary");
            }

            buffer.Write(bytes);
        }

        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>Text of the given ids (invalid UTF-8, e.g. a cut multi-byte character, becomes U+FFFD).</summary>
    public string Decode(ReadOnlySpan<int> ids) => Encoding.UTF8.GetString(DecodeBytes(ids));

    private int EncodeCore(ReadOnlySpan<char> text, List<int>? tokens)
    {
        if (_addedRegex is null)
        {
            return EncodeSegment(text, tokens);
        }

        int count = 0;
        int pos = 0;
        foreach (ValueMatch m in _addedRegex.EnumerateMatches(text))
        {
            count += EncodeSegment(text[pos..m.Index], tokens);
            _addedLookup.TryGetValue(text.Slice(m.Index, m.Length), out int id);
            tokens?.Add(id);
            count++;
            pos = m.Index + m.Length;
        }

        return count + EncodeSegment(text[pos..], tokens);
    }

    private int EncodeSegment(ReadOnlySpan<char> segment, List<int>? tokens)
    {
        if (segment.IsEmpty)
        {
            return 0;
        }

        if (_addPrefixSpace && segment[0] != ' ')
        {
            segment = string.Concat(" ", segment);
        }

        return SplitLevel(segment, 0, tokens);
    }

    private int SplitLevel(ReadOnlySpan<char> text, int level, List<int>? tokens)
    {
        if (level == _levels.Length)
        {
            return EncodePiece(text, tokens);
        }

        // "Isolated" behaviour: matches and the gaps between them are both pieces.
        int count = 0;
        int pos = 0;
        foreach (ValueMatch m in _levels[level].EnumerateMatches(text))
        {
            if (m.Length == 0)
            {
                continue;
            }

            if (m.Index > pos)
            {
                count += SplitLevel(text[pos..m.Index], level + 1, tokens);
            }

            count += SplitLevel(text.Slice(m.Index, m.Length), level + 1, tokens);
            pos = m.Index + m.Length;
        }

        if (pos < text.Length)
        {
            count += SplitLevel(text[pos..], level + 1, tokens);
        }

        return count;
    }

    private int EncodePiece(ReadOnlySpan<char> piece, List<int>? tokens)
    {
        if (!_cacheLookup.TryGetValue(piece, out int[]? ids))
        {
            ids = MergePiece(piece);
            if (Interlocked.Increment(ref _cacheCount) > _cacheCapacity)
            {
                _cache.Clear();
                Interlocked.Exchange(ref _cacheCount, 0);
            }

            _cacheLookup.TryAdd(piece, ids);
        }

        tokens?.AddRange(ids);
        return ids.Length;
    }

    private int[] MergePiece(ReadOnlySpan<char> piece)
    {
        int max = Encoding.UTF8.GetMaxByteCount(piece.Length);
        byte[]? rented = max > 1024 ? ArrayPool<byte>.Shared.Rent(max) : null;
        Span<byte> bytes = rented ?? stackalloc byte[max];
        try
        {
            int n = Encoding.UTF8.GetBytes(piece, bytes);
            return MergeBytes(bytes[..n]);
        }
        finally
        {
            if (rented is not null)
            {
                ArrayPool<byte>.Shared.Return(rented);
            }
        }
    }

    /// <summary>Byte-pair merging of one piece's bytes into token ids.</summary>
    internal int[] MergeBytes(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length == 1)
        {
            return [_byteIds[bytes[0]]];
        }

        if (_wholePieceFirst && bytes.Length <= MaxStackChars)
        {
            Span<char> mapped = stackalloc char[bytes.Length];
            for (int i = 0; i < bytes.Length; i++)
            {
                mapped[i] = ByteLevelMap.ToChar(bytes[i]);
            }

            if (_vocabLookup.TryGetValue(mapped, out int whole))
            {
                return [whole];
            }
        }

        return bytes.Length <= ScanLimit ? MergeByScan(bytes) : MergeByHeap(bytes);
    }

    /// <summary>O(n²) rank scan, allocation-free apart from the result; used for short pieces.</summary>
    internal int[] MergeByScan(ReadOnlySpan<byte> bytes)
    {
        int n = bytes.Length;
        Span<int> ids = n <= ScanLimit ? stackalloc int[ScanLimit] : new int[n];
        Span<long> pair = n <= ScanLimit ? stackalloc long[ScanLimit] : new long[n];
        for (int i = 0; i < n; i++)
        {
            ids[i] = _byteIds[bytes[i]];
        }

        for (int i = 0; i < n - 1; i++)
        {
            pair[i] = PairRank(ids[i], ids[i + 1]);
        }

        while (n > 1)
        {
            int best = -1;
            long bestKey = long.MaxValue;
            for (int i = 0; i < n - 1; i++)
            {
                if (pair[i] < bestKey)
                {
                    bestKey = pair[i];
                    best = i;
                }
            }

            if (best < 0)
            {
                break;
            }

            ids[best] = (int)(bestKey & 0xFFFFFFFF);
            for (int i = best + 1; i < n - 1; i++)
            {
                ids[i] = ids[i + 1];
                pair[i] = pair[i + 1];
            }

            n--;
            if (best > 0)
            {
                pair[best - 1] = PairRank(ids[best - 1], ids[best]);
            }

            if (best < n - 1)
            {
                pair[best] = PairRank(ids[best], ids[best + 1]);
            }
        }

        return ids[..n].ToArray();
    }

    /// <summary>Heap-ordered merging over a linked list of symbols (tokenizers' Word::merge_all); O(n log n).</summary>
    internal int[] MergeByHeap(ReadOnlySpan<byte> bytes)
    {
        int n = bytes.Length;
        var ids = new int[n];
        var next = new int[n];
        var prev = new int[n];
        for (int i = 0; i < n; i++)
        {
            ids[i] = _byteIds[bytes[i]];
            next[i] = i + 1 < n ? i + 1 : -1;
            prev[i] = i - 1;
        }

        // Priority (rank, left position): the lowest rank, leftmost on ties. Element: (left, leftId, rightId).
        var heap = new PriorityQueue<(int Left, int LeftId, int RightId), long>();
        for (int i = 0; i < n - 1; i++)
        {
            Push(heap, i, ids[i], ids[i + 1]);
        }

        int alive = n;
        while (heap.TryDequeue(out var e, out long priority))
        {
            int left = e.Left;
            int right = next[left];
            if (ids[left] != e.LeftId || right < 0 || ids[right] != e.RightId)
            {
                continue; // stale: one side was merged since this pair was queued
            }

            _merges.TryGetValue(PairKey(e.LeftId, e.RightId), out ulong merge);
            ids[left] = (int)(merge & 0xFFFFFFFF);
            ids[right] = -1;
            int after = next[right];
            next[left] = after;
            if (after >= 0)
            {
                prev[after] = left;
            }

            alive--;
            if (prev[left] >= 0)
            {
                Push(heap, prev[left], ids[prev[left]], ids[left]);
            }

            if (after >= 0)
            {
                Push(heap, left, ids[left], ids[after]);
            }

            _ = priority;
        }

        var result = new int[alive];
        int k = 0;
        for (int i = 0; i >= 0; i = next[i])
        {
            result[k++] = ids[i];
        }

        return result;
    }

    private void Push(PriorityQueue<(int, int, int), long> heap, int left, int leftId, int rightId)
    {
        if (_merges.TryGetValue(PairKey(leftId, rightId), out ulong merge))
        {
            long rank = (long)(merge >> 32);
            heap.Enqueue((left, leftId, rightId), (rank << 32) | (uint)left);
        }
    }

    /// <summary>(rank &lt;&lt; 32 | merged id) of a pair, or long.MaxValue when the pair has no merge.</summary>
    private long PairRank(int left, int right) =>
        _merges.TryGetValue(PairKey(left, right), out ulong merge) ? (long)merge : long.MaxValue;

    internal static ulong PairKey(int left, int right) => ((ulong)(uint)left << 32) | (uint)right;

    internal static ulong MergeValue(int rank, int mergedId) => ((ulong)(uint)rank << 32) | (uint)mergedId;
}
