namespace Simulator.Traces;

/// <summary>A malformed input line or entry: where and why. Readers skip it and keep going unless strict.</summary>
public sealed record TraceIssue(string File, int Line, string Message)
{
    /// <inheritdoc />
    public override string ToString() => $"{File}:{Line}: {Message}";
}

/// <summary>Thrown in strict mode at the first malformed line.</summary>
public sealed class TraceFormatException(TraceIssue issue) : Exception(issue.ToString())
{
    /// <summary>The offending line.</summary>
    public TraceIssue Issue { get; } = issue;
}

/// <summary>What a reader produced: requests in file order and every skipped line.</summary>
public sealed class TraceLoadResult
{
    /// <summary>Requests.</summary>
    public List<TraceRequest> Requests { get; } = [];

    /// <summary>Skipped lines (malformed), in reading order.</summary>
    public List<TraceIssue> Issues { get; } = [];

    /// <summary>Duplicate request pairs merged while reading (WEKA v6 stream/non-stream pairs).</summary>
    public int MergedDuplicates { get; set; }

    /// <summary>Records an issue, or throws when <paramref name="strict"/>.</summary>
    public void Report(TraceIssue issue, bool strict)
    {
        if (strict)
        {
            throw new TraceFormatException(issue);
        }

        Issues.Add(issue);
    }
}
