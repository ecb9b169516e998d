namespace Gateway.Core.Tenancy;

/// <summary>
/// A client's per-request priority (the <c>x-priority</c> header: <c>interactive</c> or <c>batch</c>) within the
/// classes its tenant may use. A tenant configured <c>Interactive</c> may send any request as batch; a tenant configured
/// <c>Batch</c> asking for interactive is clamped to batch (not refused: a client library that always sends the header
/// keeps working, and gains nothing).
/// </summary>
public static class PriorityRequest
{
    /// <summary>The header clients send.</summary>
    public const string Header = "x-priority";

    /// <summary>Parses a header value (case-insensitive); empty or absent = no request. False for any other value.</summary>
    public static bool TryParse(string? value, out PriorityClass? requested)
    {
        requested = null;
        if (string.IsNullOrWhiteSpace(value))
        {
            return true;
        }

        switch (value.Trim().ToLowerInvariant())
        {
            case "interactive":
                requested = PriorityClass.Interactive;
                return true;
            case "batch":
                requested = PriorityClass.Batch;
                return true;
            default:
                return false;
        }
    }

    /// <summary>The class a request runs in: the requested one if the tenant may use it, else the tenant's own.</summary>
    public static PriorityClass Effective(PriorityClass tenant, PriorityClass? requested) =>
        requested is { } r && r > tenant ? r : tenant;
}
