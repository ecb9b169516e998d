using System.Reflection;

namespace Gateway.Core.Tests.Architecture;

public class CorePurityTests
{
    private static readonly string[] Forbidden = ["Microsoft.AspNetCore", "Yarp", "OpenTelemetry", "StackExchange", "Polly", "Microsoft.Extensions"];

    [Theory]
    [InlineData(typeof(Gateway.Core.Scheduling.DispatchDriver))]
    [InlineData(typeof(Llm.Prompt.Hashing.BlockHasher))]
    public void PolicyAndPromptLibraries_ReferenceOnlyTheBcl(Type inAssembly)
    {
        var offending = inAssembly.Assembly.GetReferencedAssemblies()
            .Select(a => a.Name ?? "")
            .Where(n => Forbidden.Any(f => n.StartsWith(f, StringComparison.Ordinal)))
            .ToList();
        Assert.Empty(offending);
    }

    [Fact]
    public void GatewayCore_PolicyCodeDoesNotReadTheWallClock()
    {
        // Time comes through TimeProvider; a policy calling DateTime.UtcNow or Stopwatch cannot run in virtual time.
        var core = typeof(Gateway.Core.Scheduling.DispatchDriver).Assembly;
        string root = FindRepoRoot();
        var offenders = Directory.EnumerateFiles(Path.Combine(root, "src", "Gateway.Core"), "*.cs", SearchOption.AllDirectories)
            .Where(f => !f.Contains("/obj/", StringComparison.Ordinal))
            .Where(f =>
            {
                string text = File.ReadAllText(f);
                return text.Contains("DateTime.UtcNow", StringComparison.Ordinal) || text.Contains("DateTime.Now", StringComparison.Ordinal)
                    || text.Contains("Stopwatch.", StringComparison.Ordinal) || text.Contains("Environment.TickCount", StringComparison.Ordinal);
            })
            .Select(f => Path.GetRelativePath(root, f))
            .ToList();
        Assert.NotNull(core);
        Assert.Empty(offenders);
    }

    private static string FindRepoRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Gateway.sln")))
        {
            dir = dir.Parent;
        }

        return dir?.FullName ?? throw new InvalidOperationException("repo root not found");
    }
}
