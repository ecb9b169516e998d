using System.CommandLine;

namespace Worker.Tests;

/// <summary>Reads a command's --help output: each option's entry runs from its name to the next option's.</summary>
internal static class HelpText
{
    public static void AssertEveryOptionHasADefault(Command command, string help)
    {
        var options = command.Options.Where(o => o is not System.CommandLine.Help.HelpOption and not VersionOption).ToList();
        Assert.NotEmpty(options);
        var starts = options.Select(o => (o.Name, At: help.IndexOf("  " + o.Name + " ", StringComparison.Ordinal) is >= 0 and var i ? i : help.IndexOf(", " + o.Name + " ", StringComparison.Ordinal))).ToList();
        foreach (var (name, at) in starts)
        {
            Assert.True(at >= 0, $"{name} is missing from --help");
            int next = help.IndexOf("\n  -", at + 1, StringComparison.Ordinal);
            string entry = help[at..(next < 0 ? help.Length : next)];
            Assert.True(entry.Contains("[default: ", StringComparison.Ordinal), $"{name} shows no default: {entry}");
        }
    }
}
