using System.Text.RegularExpressions;
using System.Xml.Linq;
using Gateway.Tests.Telemetry;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace Gateway.Tests.Deploy;

/// <summary>No Docker engine runs here: the Dockerfile is parsed for the essentials, and its health probe script is run for real.</summary>
public partial class DockerfileTests
{
    private sealed record Instruction(string Keyword, string Args, int Index);

    private sealed record Stage(string Name, string From, List<Instruction> Instructions);

    private static List<Stage> ParseStages()
    {
        string text = File.ReadAllText(RepoTools.InRepo("Dockerfile"));
        text = text.Replace("\\\r\n", " ", StringComparison.Ordinal).Replace("\\\n", " ", StringComparison.Ordinal); // line continuations
        var stages = new List<Stage>();
        int index = 0;
        foreach (var raw in text.Split('\n'))
        {
            string line = raw.Trim();
            if (line.Length == 0 || line.StartsWith('#')) continue;
            int sp = line.IndexOf(' ');
            string kw = (sp < 0 ? line : line[..sp]).ToUpperInvariant();
            string args = sp < 0 ? "" : line[(sp + 1)..].Trim();
            if (kw == "FROM")
            {
                var m = FromRegex().Match(args);
                Assert.True(m.Success, "unnamed stage: FROM " + args);
                stages.Add(new Stage(m.Groups[2].Value, m.Groups[1].Value, []));
                continue;
            }
            if (stages.Count > 0) stages[^1].Instructions.Add(new Instruction(kw, args, index++));
        }
        return stages;
    }

    [GeneratedRegex(@"^(\S+)\s+AS\s+(\S+)$", RegexOptions.IgnoreCase)]
    private static partial Regex FromRegex();

    private static Stage StageNamed(List<Stage> stages, string name) =>
        stages.SingleOrDefault(s => s.Name == name) ?? throw new Xunit.Sdk.XunitException($"no stage '{name}'; stages: {string.Join(", ", stages.Select(s => s.Name))}");

    /// <summary>Every project a csproj references, transitively, as repo-relative paths.</summary>
    private static HashSet<string> ProjectClosure(string csproj)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var todo = new Stack<string>([csproj]);
        while (todo.Count > 0)
        {
            string p = todo.Pop();
            if (!seen.Add(p)) continue;
            var doc = XDocument.Load(RepoTools.InRepo(p));
            foreach (var r in doc.Descendants("ProjectReference"))
            {
                string full = Path.GetFullPath(Path.Combine(Path.GetDirectoryName(RepoTools.InRepo(p))!, r.Attribute("Include")!.Value.Replace('\\', '/')));
                todo.Push(Path.GetRelativePath(RepoTools.RepoRoot, full).Replace('\\', '/'));
            }
        }
        return seen;
    }

    [Fact]
    public void Dockerfile_Stages_BuildPublishAndBothTargets()
    {
        var stages = ParseStages();
        Assert.True(stages.Count >= 4, "multi-stage build expected");
        Assert.StartsWith("mcr.microsoft.com/dotnet/sdk:", StageNamed(stages, "build").From, StringComparison.Ordinal);
        var gateway = StageNamed(stages, "gateway");
        var worker = StageNamed(stages, "worker");
        Assert.Equal("gateway", stages[^1].Name); // plain `docker build .` gives the gateway
        foreach (var (stage, dll, port) in new[] { (gateway, "Gateway.dll", "8080"), (worker, "Worker.dll", "8000") })
        {
            var all = Lineage(stages, stage).SelectMany(s => s.Instructions).ToList();
            Assert.Contains(all, i => i.Keyword == "ENTRYPOINT" && i.Args.Contains(dll, StringComparison.Ordinal));
            Assert.Contains(all, i => i.Keyword == "EXPOSE" && i.Args.Split(' ').Contains(port));
            Assert.Contains(all, i => i.Keyword == "COPY" && i.Args.StartsWith("--from=publish-", StringComparison.Ordinal));
            Assert.Contains(all, i => i.Keyword == "ENV" && i.Args.Contains("ASPNETCORE_URLS=", StringComparison.Ordinal));
            Assert.StartsWith("mcr.microsoft.com/dotnet/aspnet:", Lineage(stages, stage)[0].From, StringComparison.Ordinal);
        }
        // The worker runs Server GC; the gateway the workstation GC its runtimeconfig names, which an image-wide
        // DOTNET_gcServer=1 would override.
        Assert.Contains(Lineage(stages, worker).SelectMany(s => s.Instructions), i => i.Keyword == "ENV" && i.Args.Contains("DOTNET_gcServer=1", StringComparison.Ordinal));
        Assert.DoesNotContain(Lineage(stages, gateway).SelectMany(s => s.Instructions), i => i.Keyword == "ENV" && i.Args.Contains("DOTNET_gcServer", StringComparison.Ordinal));
        // Two malloc arenas: glibc's default (8 a core, each keeping its peak) let the gateway's native memory ratchet up.
        Assert.Contains(Lineage(stages, gateway).SelectMany(s => s.Instructions), i => i.Keyword == "ENV" && i.Args.Contains("MALLOC_ARENA_MAX=2", StringComparison.Ordinal));
    }

    private static List<Stage> Lineage(List<Stage> stages, Stage s)
    {
        var chain = new List<Stage> { s };
        while (stages.FirstOrDefault(x => x.Name == chain[0].From) is { } parent) chain.Insert(0, parent);
        return chain;
    }

    [Fact]
    public void Dockerfile_Restore_FromProjectFilesBeforeSources()
    {
        var build = StageNamed(ParseStages(), "build");
        var restore = build.Instructions.First(i => i.Keyword == "RUN" && i.Args.Contains("dotnet restore", StringComparison.Ordinal));
        var copySrc = build.Instructions.First(i => i.Keyword == "COPY" && Regex.IsMatch(i.Args, @"^src/?\s"));
        Assert.True(restore.Index < copySrc.Index, "restore must run before the sources are copied");
        var copiedBeforeRestore = build.Instructions.Where(i => i.Keyword == "COPY" && i.Index < restore.Index)
            .SelectMany(i => i.Args.Split(' ', StringSplitOptions.RemoveEmptyEntries)[..^1]).ToHashSet(StringComparer.Ordinal);
        Assert.DoesNotContain("src/", copiedBeforeRestore);
        foreach (string f in copiedBeforeRestore)
            Assert.True(File.Exists(RepoTools.InRepo(f)), $"Dockerfile copies {f}, which is not in the repository");
        Assert.Contains("Directory.Packages.props", copiedBeforeRestore);
        Assert.Contains("Directory.Build.props", copiedBeforeRestore);
        var needed = ProjectClosure("src/Gateway/Gateway.csproj");
        needed.UnionWith(ProjectClosure("src/Worker/Worker.csproj"));
        foreach (string p in needed)
            Assert.True(copiedBeforeRestore.Contains(p), $"{p} is referenced by the gateway or worker but not copied before restore");
        Assert.Contains("src/Gateway/Gateway.csproj", restore.Args, StringComparison.Ordinal);
        Assert.Contains("src/Worker/Worker.csproj", restore.Args, StringComparison.Ordinal);
    }

    [Fact]
    public void Dockerfile_RuntimeStages_NonRootWithHealthcheck()
    {
        var stages = ParseStages();
        foreach (string name in new[] { "gateway", "worker" })
        {
            var stage = StageNamed(stages, name);
            var user = stage.Instructions.LastOrDefault(i => i.Keyword == "USER");
            Assert.True(user is not null, $"{name}: no USER");
            Assert.DoesNotContain(user!.Args.Split(':')[0], new[] { "root", "0" });
            var hc = stage.Instructions.SingleOrDefault(i => i.Keyword == "HEALTHCHECK");
            Assert.True(hc is not null, $"{name}: no HEALTHCHECK");
            Assert.Contains("/healthz", hc!.Args, StringComparison.Ordinal);
            Assert.DoesNotContain("curl", hc.Args, StringComparison.Ordinal);
            Assert.DoesNotContain("wget", hc.Args, StringComparison.Ordinal);
        }
        Assert.Contains(stages.SelectMany(s => s.Instructions),
            i => i.Keyword == "COPY" && i.Args.Contains("deploy/docker/healthcheck.sh", StringComparison.Ordinal));
    }

    [Fact]
    public async Task HealthcheckScript_AgainstKestrel_ZeroOnlyFor200()
    {
        var healthy = true;
        await using var app = await KestrelApp.StartAsync(null, a =>
            a.MapGet("/healthz", () => healthy ? Results.Text("ok") : Results.StatusCode(503)));
        string script = RepoTools.InRepo("deploy", "docker", "healthcheck.sh");
        string port = app.Address.Port.ToString(System.Globalization.CultureInfo.InvariantCulture);

        Assert.Equal(0, RepoTools.Run("bash", [script, port, "/healthz"], timeoutSeconds: 20).ExitCode);
        healthy = false;
        Assert.Equal(1, RepoTools.Run("bash", [script, port, "/healthz"], timeoutSeconds: 20).ExitCode);
        Assert.Equal(1, RepoTools.Run("bash", [script, port, "/missing"], timeoutSeconds: 20).ExitCode);
        Assert.Equal(1, RepoTools.Run("bash", [script, RepoTools.FreeTcpPort().ToString(System.Globalization.CultureInfo.InvariantCulture)], timeoutSeconds: 20).ExitCode);
    }
}
