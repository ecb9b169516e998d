using System.Buffers;
using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using Gateway.Configuration;
using Microsoft.Extensions.Options;

namespace Gateway.Auth;

/// <summary>
/// Maps <c>Authorization: Bearer KEY</c> to a <see cref="Tenant"/>. Keys are held only as HMAC-SHA256(server secret,
/// key) digests; a presented key is digested and compared with <see cref="CryptographicOperations.FixedTimeEquals"/>.
/// The lookup buckets digests by their first 8 bytes (an HMAC output: leaks nothing about the key) and then compares
/// the full 32 bytes in constant time. A key that matched is remembered (<see cref="VerifiedKeyCache"/>, bounded, per key
/// table) so that its next request is checked without the HMAC. Keys are never logged.
/// </summary>
public sealed class ApiKeyAuthenticator
{
    private const int DigestBytes = 32;
    private readonly byte[] _secret;
    private readonly long _cacheSeed = BinaryPrimitives.ReadInt64LittleEndian(RandomNumberGenerator.GetBytes(8));
    private KeyTable _table;

    /// <summary>Builds the key table from options; generates a random secret when none is configured.</summary>
    public ApiKeyAuthenticator(IOptions<GatewayOptions> options)
    {
        var auth = options.Value.Auth;
        GeneratedSecret = string.IsNullOrEmpty(auth.ServerSecret);
        _secret = GeneratedSecret ? RandomNumberGenerator.GetBytes(32) : Encoding.UTF8.GetBytes(auth.ServerSecret);
        _table = BuildTable(auth, out int count);
        KeyCount = count;
    }

    /// <summary>True when no secret was configured and a random one is in use.</summary>
    public bool GeneratedSecret { get; }

    /// <summary>Number of keys accepted.</summary>
    public int KeyCount { get; private set; }

    /// <summary>
    /// Swaps in the keys of reloaded options (added keys work at once, removed keys stop working; requests already
    /// authenticated are not affected). The server secret is fixed for the process: a changed secret needs a restart.
    /// </summary>
    public void Reload(AuthOptions auth)
    {
        ArgumentNullException.ThrowIfNull(auth);
        var table = BuildTable(auth, out int count);
        Volatile.Write(ref _table, table);
        KeyCount = count;
    }

    /// <summary>Hex HMAC-SHA256(<paramref name="secret"/>, <paramref name="key"/>): the form keys are configured in.</summary>
    public static string HashKey(string secret, string key) => Convert.ToHexStringLower(Digest(Encoding.UTF8.GetBytes(secret), key));

    /// <summary>Authenticates an Authorization header value; null when missing, malformed or unknown.</summary>
    public Tenant? Authenticate(ReadOnlySpan<char> authorization)
    {
        const string Bearer = "Bearer ";
        if (authorization.Length <= Bearer.Length || !authorization.StartsWith(Bearer, StringComparison.OrdinalIgnoreCase))
        {
            return null;
        }

        var key = authorization[Bearer.Length..].Trim();
        if (key.IsEmpty || key.Length > 512)
        {
            return null;
        }

        var table = Volatile.Read(ref _table);
        Span<byte> digest = stackalloc byte[DigestBytes];
        int max = Encoding.UTF8.GetMaxByteCount(key.Length);
        byte[]? rented = max > 1024 ? ArrayPool<byte>.Shared.Rent(max) : null;
        Span<byte> keyBytes = rented ?? stackalloc byte[1024];
        int n = 0;
        try
        {
            n = Encoding.UTF8.GetBytes(key, keyBytes);
            if (table.Verified.Find(keyBytes[..n]) is { } known)
            {
                return known;
            }

            HMACSHA256.HashData(_secret, keyBytes[..n], digest);
            var found = table.Find(digest);
            if (found is not null)
            {
                table.Verified.Add(keyBytes[..n], found);
            }

            return found;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(keyBytes[..n]);
            if (rented is not null)
            {
                ArrayPool<byte>.Shared.Return(rented);
            }
        }
    }

    /// <summary>Per-org cache salt: hex HMAC-SHA256(secret, "cache-salt:" + org).</summary>
    public string SaltFor(string tenantPath)
    {
        string org = tenantPath.Split('/')[0];
        return Convert.ToHexStringLower(HMACSHA256.HashData(_secret, Encoding.UTF8.GetBytes("cache-salt:" + org)))[..32];
    }

    private static byte[] Digest(byte[] secret, string key) => HMACSHA256.HashData(secret, Encoding.UTF8.GetBytes(key));

    private KeyTable BuildTable(AuthOptions auth, out int count)
    {
        var table = new Dictionary<ulong, (byte[] Digest, Tenant Tenant)[]>();
        count = 0;
        foreach (var k in auth.Keys)
        {
            Add(table, Convert.FromHexString(k.Hash), new Tenant(k.Tenant, k.Weight, k.Models, k.MaxTokens, k.MaxN, SaltFor(k.Tenant), k.Aliases));
            count++;
        }

        if (auth.DemoKey.Enabled && !string.IsNullOrEmpty(auth.DemoKey.Key))
        {
            Add(table, Digest(_secret, auth.DemoKey.Key), new Tenant(auth.DemoKey.Tenant, auth.DemoKey.Weight, [], 0, 0, SaltFor(auth.DemoKey.Tenant)));
            count++;
        }

        return new KeyTable(table, new VerifiedKeyCache(_cacheSeed));
    }

    private static void Add(Dictionary<ulong, (byte[] Digest, Tenant Tenant)[]> table, byte[] digest, Tenant tenant)
    {
        ulong prefix = BinaryPrimitives.ReadUInt64LittleEndian(digest);
        table[prefix] = table.TryGetValue(prefix, out var b) ? [.. b, (digest, tenant)] : [(digest, tenant)];
    }

    /// <summary>The configured keys' digests (bucketed by their first 8 bytes) and the keys verified against them.</summary>
    private sealed class KeyTable(Dictionary<ulong, (byte[] Digest, Tenant Tenant)[]> byPrefix, VerifiedKeyCache verified)
    {
        public VerifiedKeyCache Verified { get; } = verified;

        /// <summary>The tenant whose digest is <paramref name="digest"/> (compared in full, in constant time), or null.</summary>
        public Tenant? Find(ReadOnlySpan<byte> digest)
        {
            if (!byPrefix.TryGetValue(BinaryPrimitives.ReadUInt64LittleEndian(digest), out var bucket))
            {
                return null;
            }

            Tenant? found = null;
            foreach (var (d, t) in bucket)
            {
                if (CryptographicOperations.FixedTimeEquals(d, digest))
                {
                    found = t;
                }
            }

            return found;
        }
    }
}
