using System.Globalization;

namespace Simulator.Traces;

/// <summary>
/// Azure LLM inference trace 2023 CSV: <c>TIMESTAMP,ContextTokens,GeneratedTokens</c>. The trace has no block
/// hashes, so each request gets unique synthetic ids (16-token blocks; id = request number &lt;&lt; 24 | block),
/// which makes every prefix-cache hit 0: no two Azure requests share a block (documented in docs/simulator.md).
/// </summary>
public static class AzureReader
{
    /// <summary>Block size of the synthetic ids.</summary>
    public const int BlockSize = 16;

    /// <summary>Reads the CSV (header line optional); arrival times are relative to the first row.</summary>
    public static TraceLoadResult Read(string path, bool strict)
    {
        var result = new TraceLoadResult();
        string name = Path.GetFileName(path);
        DateTime? first = null;
        long requestNo = 0;
        foreach (var (line, text) in TraceReader.Lines(path))
        {
            if (string.IsNullOrWhiteSpace(text))
            {
                continue;
            }

            if (line == 1 && text.StartsWith("TIMESTAMP", StringComparison.OrdinalIgnoreCase))
            {
                continue;
            }

            try
            {
                var parts = text.Split(',');
                if (parts.Length != 3)
                {
                    throw new FormatException($"expected 3 columns, got {parts.Length}");
                }

                if (!DateTime.TryParse(parts[0].Trim(), CultureInfo.InvariantCulture, DateTimeStyles.AdjustToUniversal | DateTimeStyles.AssumeUniversal, out var ts))
                {
                    throw new FormatException($"bad TIMESTAMP '{parts[0].Trim()}'");
                }

                if (!int.TryParse(parts[1].Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out int input))
                {
                    throw new FormatException($"bad ContextTokens '{parts[1].Trim()}'");
                }

                if (!int.TryParse(parts[2].Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out int output))
                {
                    throw new FormatException($"bad GeneratedTokens '{parts[2].Trim()}'");
                }

                Validate.Lengths(input, output);
                first ??= ts;
                requestNo++;
                int blocks = (input + BlockSize - 1) / BlockSize;
                var ids = new long[blocks];
                for (int b = 0; b < blocks; b++)
                {
                    ids[b] = (requestNo << 24) | (long)b;
                }

                result.Requests.Add(new TraceRequest
                {
                    T = Math.Max(0, (ts - first.Value).TotalSeconds),
                    In = input,
                    Out = output,
                    BlockSize = BlockSize,
                    HashIds = HashIds.Of(ids),
                    Source = $"{name}:{line}",
                });
            }
            catch (FormatException e)
            {
                result.Report(new TraceIssue(name, line, e.Message), strict);
            }
        }

        return result;
    }
}
