using System.Globalization;

namespace Gateway.Tests.Telemetry;

/// <summary>A small reader of Prometheus text format 0.0.4 for assertions (promtool does the strict validation).</summary>
internal sealed class Exposition
{
    public sealed record Sample(string Name, IReadOnlyDictionary<string, string> Labels, double Value);

    public Dictionary<string, string> Types { get; } = new(StringComparer.Ordinal);
    public Dictionary<string, string> Help { get; } = new(StringComparer.Ordinal);
    public List<Sample> Samples { get; } = [];

    public static Exposition Parse(string text)
    {
        var e = new Exposition();
        foreach (var raw in text.Split('\n'))
        {
            if (raw.Length == 0) continue;
            if (raw.StartsWith("# TYPE ", StringComparison.Ordinal))
            {
                var p = raw[7..].Split(' ');
                Assert.True(e.Types.TryAdd(p[0], p[1]), "duplicate TYPE for " + p[0]);
                continue;
            }
            if (raw.StartsWith("# HELP ", StringComparison.Ordinal))
            {
                int sp = raw.IndexOf(' ', 7);
                e.Help[raw[7..sp]] = raw[(sp + 1)..];
                continue;
            }
            if (raw.StartsWith('#')) continue;
            int brace = raw.IndexOf('{');
            int space = raw.LastIndexOf(' ');
            string name = brace >= 0 && brace < space ? raw[..brace] : raw[..raw.IndexOf(' ')];
            var labels = new Dictionary<string, string>(StringComparer.Ordinal);
            if (brace >= 0 && brace < space)
            {
                int i = brace + 1;
                while (raw[i] != '}')
                {
                    int eq = raw.IndexOf('=', i);
                    string key = raw[i..eq];
                    Assert.Equal('"', raw[eq + 1]);
                    var val = new System.Text.StringBuilder();
                    int j = eq + 2;
                    for (; raw[j] != '"'; j++)
                    {
                        if (raw[j] == '\\')
                        {
                            j++;
                            val.Append(raw[j] switch { 'n' => '\n', var c => c });
                        }
                        else val.Append(raw[j]);
                    }
                    labels[key] = val.ToString();
                    i = j + 1;
                    if (raw[i] == ',') i++;
                }
            }
            string v = raw[(space + 1)..];
            double value = v switch
            {
                "+Inf" => double.PositiveInfinity,
                "-Inf" => double.NegativeInfinity,
                "NaN" => double.NaN,
                _ => double.Parse(v, CultureInfo.InvariantCulture),
            };
            e.Samples.Add(new Sample(name, labels, value));
        }
        return e;
    }

    public IEnumerable<Sample> Named(string name) => Samples.Where(s => s.Name == name);

    public double Value(string name, params (string Key, string Value)[] labels) =>
        Single(name, labels).Value;

    public Sample Single(string name, params (string Key, string Value)[] labels)
    {
        var matches = Named(name).Where(s => labels.All(l => s.Labels.TryGetValue(l.Key, out var v) && v == l.Value)).ToList();
        Assert.True(matches.Count == 1, $"expected one sample {name} {string.Join(",", labels)}; found {matches.Count}");
        return matches[0];
    }
}
