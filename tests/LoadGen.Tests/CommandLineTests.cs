namespace LoadGen.Tests;

public sealed class CommandLineTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("loadgen-cli-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Theory]
    [InlineData("0", 0)]
    [InlineData("2.5", 2.5)]
    public void Parse_NoisyFactor_ZeroIsTheAloneBaseline(string text, double factor)
    {
        var cl = CommandLine.Parse(["--scenario", "noisy-neighbour", "--tenants", "3", "--noisy-factor", text]);
        Assert.Equal(factor, cl.ScenarioOptions.NoisyFactor);
    }

    [Fact]
    public void Parse_RepeatedKeysAndKeysFile_MakeOneTenantEach()
    {
        string file = Path.Combine(_dir, "keys.txt");
        File.WriteAllLines(file, ["# comment", "acme sk-acme", "", "sk-bare"]);
        var cl = CommandLine.Parse(["--scenario", "overhead", "--key", "sk-1", "--key", "sk-2", "--keys-file", file]);
        var t = cl.ScenarioOptions.Tenants;
        Assert.Equal(["tenant-1", "tenant-2", "acme", "tenant-4"], t.Select(x => x.Name));
        Assert.Equal(["sk-1", "sk-2", "sk-acme", "sk-bare"], t.Select(x => x.ApiKey));
        Assert.DoesNotContain(cl.Settings.Values, v => v.Contains("sk-", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("30s", 30)]
    [InlineData("2m", 120)]
    [InlineData("500ms", 0.5)]
    [InlineData("1h", 3600)]
    [InlineData("12", 12)]
    public void ParseDuration_Units(string text, double seconds)
    {
        Assert.Equal(seconds, CommandLine.ParseDuration("--duration", text).TotalSeconds, 9);
    }

    [Theory]
    [InlineData("--scenario", "overhead", "--rate", "-1")]
    [InlineData("--scenario", "overhead", "--duration", "soon")]
    [InlineData("--scenario", "overhead", "--target", "ftp://x")]
    [InlineData("--scenario", "overhead", "--bogus")]
    [InlineData("--rate", "1")]
    [InlineData("--scenario", "noisy-neighbour", "--noisy-factor", "-1")]
    public void Parse_BadInput_ThrowsArgumentException(params string[] args)
    {
        Assert.Throws<ArgumentException>(() => CommandLine.Parse(args));
    }

    [Fact]
    public void Parse_Defaults()
    {
        var cl = CommandLine.Parse(["--scenario", "shared-prefix", "--tenants", "3", "--max-requests", "10"]);
        Assert.Equal(new Uri("http://127.0.0.1:8080/"), cl.Target);
        Assert.Equal(3, cl.ScenarioOptions.Tenants.Count);
        Assert.All(cl.ScenarioOptions.Tenants, t => Assert.Null(t.ApiKey));
        Assert.Equal(10, cl.MaxRequests);
        Assert.Equal(TimeSpan.FromSeconds(30), cl.ScenarioOptions.Duration);
    }

    [Fact]
    public void Parse_TwoBadOptions_ReportsBoth()
    {
        var e = Assert.Throws<ArgumentException>(() => CommandLine.Parse(["--scenario", "overhead", "--rate", "-1", "--duration", "soon"]));
        Assert.Contains("--rate must be a positive number, got -1", e.Message, StringComparison.Ordinal);
        Assert.Contains("--duration: 'soon' is not a duration", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Invoke_TwoBadOptions_WritesBothAndExits1WithoutRunning()
    {
        bool ran = false;
        var stderr = new StringWriter();
        int rc = CommandLine.CreateApp((_, _) => { ran = true; return 0; }).Invoke(["--scenario", "overhead", "--warmup", "x", "--target", "ftp://x"], new StringWriter(), stderr);
        Assert.Equal(1, rc);
        Assert.False(ran);
        Assert.Contains("--warmup", stderr.ToString(), StringComparison.Ordinal);
        Assert.Contains("--target must be an http(s) URL", stderr.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void Help_ListsEveryOptionWithItsDefault()
    {
        var stdout = new StringWriter();
        Assert.Equal(0, CommandLine.CreateApp((_, _) => 0).Invoke(["--help"], stdout, new StringWriter()));
        var entries = stdout.ToString().Split("\n  -").Skip(1).Where(e => !e.StartsWith("?, -h, --help", StringComparison.Ordinal) && !e.StartsWith("-version", StringComparison.Ordinal)).ToList();
        Assert.True(entries.Count >= 40, stdout.ToString());
        Assert.All(entries, e => Assert.Contains("[default: ", e, StringComparison.Ordinal));
    }
}
