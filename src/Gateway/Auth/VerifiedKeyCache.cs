using System.Collections.Concurrent;
using System.IO.Hashing;
using System.Security.Cryptography;

namespace Gateway.Auth;

/// <summary>
/// Keys that matched a configured digest, so that the next request with the same key skips the HMAC (an OpenSSL call
/// of several microseconds: the largest single cost of a small request's own path, docs/benchmarks.md). Entries are
/// found by a seeded XxHash3 of the key's bytes (the seed is random per process, so which keys share a slot cannot be
/// chosen from outside) and then the whole presented key is compared with the remembered one in constant time; a
/// mismatch falls back to the HMAC. Only keys that authenticated are added, so unknown keys never fill it; at
/// <see cref="Capacity"/> entries it starts again empty. Each key table has its own cache: a reload (keys added or
/// removed) starts with an empty one. The bytes of the remembered keys stay in this process's memory only, as the
/// request headers that carried them do; they are never logged or exported.
/// </summary>
internal sealed class VerifiedKeyCache
{
    /// <summary>Most keys remembered at once.</summary>
    public const int Capacity = 4096;

    private readonly ConcurrentDictionary<ulong, Entry> _entries = new();
    private readonly long _seed;

    /// <summary>Creates an empty cache whose slots are chosen with <paramref name="seed"/>.</summary>
    public VerifiedKeyCache(long seed) => _seed = seed;

    /// <summary>Keys remembered now.</summary>
    public int Count => _entries.Count;

    /// <summary>The tenant of <paramref name="key"/> when it authenticated before (same bytes), else null.</summary>
    public Tenant? Find(ReadOnlySpan<byte> key) =>
        _entries.TryGetValue(Slot(key), out var e) && CryptographicOperations.FixedTimeEquals(e.Key, key) ? e.Tenant : null;

    /// <summary>Remembers a key that authenticated as <paramref name="tenant"/>.</summary>
    public void Add(ReadOnlySpan<byte> key, Tenant tenant)
    {
        if (_entries.Count >= Capacity)
        {
            _entries.Clear();
        }

        _entries[Slot(key)] = new Entry(key.ToArray(), tenant);
    }

    private ulong Slot(ReadOnlySpan<byte> key) => XxHash3.HashToUInt64(key, _seed);

    private sealed record Entry(byte[] Key, Tenant Tenant);
}
