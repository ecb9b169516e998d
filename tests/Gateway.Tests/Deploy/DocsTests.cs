using System.Text.RegularExpressions;

namespace Gateway.Tests.Deploy;

/// <summary>
/// The docs are for users and operators: every page is reachable from the index, every relative link resolves, and
/// no page reads like a development diary (session numbers, who built what, worktrees, commit hashes as evidence).
/// </summary>
public sealed partial class DocsTests
{
    private static IEnumerable<string> Pages() =>
        Directory.EnumerateFiles(RepoTools.InRepo("docs"), "*.md", SearchOption.AllDirectories)
            .Append(RepoTools.InRepo("README.md"))
            .Order(StringComparer.Ordinal);

    [GeneratedRegex(@"(?i)\bsessions? [0-9]+\b.{0,40}\b(measured|built|landed|tried|found|made|re-run|changes?)\b|\(session [0-9]+|^#+ .*\bsession [0-9]+\b|other engineers|\bengineers'|\bworktree|\bhelpers? (built|wrote|ran)|\b(commit|built from( main)?|from main|main at) `?[0-9a-f]{7,40}`?")]
    private static partial Regex DiaryMarker();

    [GeneratedRegex(@"\]\(([^)#\s]+)(#[^)\s]*)?\)")]
    private static partial Regex MarkdownLink();

    [Fact]
    public void Docs_ReadForUsers_NoDevelopmentDiary()
    {
        var hits = new List<string>();
        foreach (string page in Pages())
        {
            string[] lines = File.ReadAllLines(page);
            for (int i = 0; i < lines.Length; i++)
                if (DiaryMarker().IsMatch(lines[i]))
                    hits.Add($"{Path.GetRelativePath(RepoTools.RepoRoot, page)}:{i + 1}: {lines[i].Trim()}");
        }
        Assert.True(hits.Count == 0, "development-diary wording in docs:\n" + string.Join('\n', hits.Take(20)));
    }

    [Fact]
    public void PackagesDoc_NamesEveryCentrallyPinnedPackageWithItsVersion()
    {
        // docs/packages.md is the dependency table: each package Directory.Packages.props pins is in a row with its version.
        var props = System.Xml.Linq.XDocument.Load(RepoTools.InRepo("Directory.Packages.props"));
        var rows = File.ReadAllLines(RepoTools.InRepo("docs", "packages.md")).Where(l => l.StartsWith('|')).ToList();
        var missing = props.Descendants("PackageVersion")
            .Select(e => (Name: (string)e.Attribute("Include")!, Version: (string)e.Attribute("Version")!))
            .Where(p => !rows.Any(r => Regex.IsMatch(r, @"(^|[|,]\s*)" + Regex.Escape(p.Name) + @"\s*[|,]") && r.Contains(p.Version, StringComparison.Ordinal)))
            .Select(p => $"{p.Name} {p.Version}")
            .ToList();
        Assert.True(missing.Count == 0, "not in docs/packages.md's tables with their version: " + string.Join(", ", missing));
    }

    [Fact]
    public void Docs_RelativeLinks_Resolve()
    {
        var broken = new List<string>();
        foreach (string page in Pages())
        {
            string dir = Path.GetDirectoryName(page)!;
            foreach (Match m in MarkdownLink().Matches(File.ReadAllText(page)))
            {
                string target = m.Groups[1].Value;
                if (target.Contains("://", StringComparison.Ordinal) || target.StartsWith("mailto:", StringComparison.Ordinal)) continue;
                string full = Path.GetFullPath(Path.Combine(dir, target));
                if (!File.Exists(full) && !Directory.Exists(full))
                    broken.Add($"{Path.GetRelativePath(RepoTools.RepoRoot, page)} -> {target}");
            }
        }
        Assert.True(broken.Count == 0, "broken links:\n" + string.Join('\n', broken));
    }

    [Fact]
    public void DocsIndex_LinksEveryPage()
    {
        string index = File.ReadAllText(RepoTools.InRepo("docs", "README.md"));
        var missing = Directory.EnumerateFiles(RepoTools.InRepo("docs"), "*.md", SearchOption.AllDirectories)
            .Select(p => Path.GetRelativePath(RepoTools.InRepo("docs"), p).Replace('\\', '/'))
            .Where(rel => rel != "README.md" && !rel.StartsWith("results/", StringComparison.Ordinal))
            .Where(rel => !index.Contains("(" + rel + ")", StringComparison.Ordinal))
            .ToList();
        Assert.True(missing.Count == 0, "pages missing from docs/README.md: " + string.Join(", ", missing));
    }

    [Theory]
    [InlineData("## Session 7: the v6 traces")]
    [InlineData("Measured on this machine while other engineers' builds ran")]
    [InlineData("Built from main `8e7d8fc` (dotnet build)")]
    [InlineData("policy (session 5; off by default)")]
    public void DiaryMarker_FindsTypicalDiaryLines(string line) => Assert.Matches(DiaryMarker(), line);

    [Theory]
    [InlineData("A session's turns reach the same worker whichever replica takes them.")]
    [InlineData("`--max-sessions 16 --session-rate 0.5` replays 16 sessions")]
    [InlineData("Block hashes are XXH64 of the token ids (seed 0)")]
    public void DiaryMarker_LeavesOrdinaryProseAlone(string line) => Assert.DoesNotMatch(DiaryMarker(), line);
}
