namespace Gateway.Tests.Status;

/// <summary>Debian's Chromium (package <c>chromium</c>, installed by tools/ensure-tools.sh), driven through Playwright.</summary>
internal static class SystemChromium
{
    /// <summary>The browser binary: Debian's real executable first (<c>/usr/bin/chromium</c> is a wrapper script), then
    /// <c>chromium</c> / <c>chromium-browser</c> on PATH; null when there is none.</summary>
    public static string? Find()
    {
        if (File.Exists("/usr/lib/chromium/chromium"))
        {
            return "/usr/lib/chromium/chromium";
        }

        foreach (var name in new[] { "chromium", "chromium-browser" })
        {
            foreach (var d in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries))
            {
                var f = Path.Combine(d, name);
                if (File.Exists(f))
                {
                    return f;
                }
            }
        }

        return null;
    }

    /// <summary>Why the browser test cannot run on this machine at all, or null: only when no Chromium is installed and
    /// no apt-get exists to install Debian's (where apt-get exists, a missing browser is a setup failure, not a skip).</summary>
    public static string? CannotExist() =>
        Find() is null && !File.Exists("/usr/bin/apt-get")
            ? "no Chromium installed and no apt-get to install Debian's 'chromium' (tools/ensure-tools.sh installs it on Debian): this machine cannot run the browser test"
            : null;
}

/// <summary>A fact that needs Debian's Chromium: skipped (with the reason) only where it cannot be installed at all.</summary>
public sealed class ChromiumFactAttribute : FactAttribute
{
    public ChromiumFactAttribute()
    {
        if (SystemChromium.CannotExist() is { } reason)
        {
            Skip = reason;
        }
    }
}
