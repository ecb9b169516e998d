using Microsoft.Extensions.Configuration;
using YamlDotNet.RepresentationModel;

namespace Gateway.Configuration;

/// <summary>Adds a YAML file as a configuration source (flattened to <c>a:b:0:c</c> keys, as JSON files are).</summary>
public static class YamlConfigurationExtensions
{
    /// <summary>Reads <paramref name="path"/> now and adds its keys (the file must exist).</summary>
    public static IConfigurationBuilder AddYamlFile(this IConfigurationBuilder builder, string path)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var data = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        using (var reader = File.OpenText(path))
        {
            var stream = new YamlStream();
            stream.Load(reader);
            if (stream.Documents.Count > 0)
            {
                Flatten(stream.Documents[0].RootNode, null, data);
            }
        }

        return builder.AddInMemoryCollection(data);
    }

    /// <summary>Flattens a YAML text (used by tests and the file source).</summary>
    internal static Dictionary<string, string?> FlattenYaml(string yaml)
    {
        var data = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        var stream = new YamlStream();
        stream.Load(new StringReader(yaml));
        if (stream.Documents.Count > 0)
        {
            Flatten(stream.Documents[0].RootNode, null, data);
        }

        return data;
    }

    private static void Flatten(YamlNode node, string? prefix, Dictionary<string, string?> data)
    {
        switch (node)
        {
            case YamlMappingNode map:
                foreach (var (k, v) in map.Children)
                {
                    string key = ((YamlScalarNode)k).Value ?? "";
                    Flatten(v, prefix is null ? key : prefix + ":" + key, data);
                }

                break;
            case YamlSequenceNode seq:
                for (int i = 0; i < seq.Children.Count; i++)
                {
                    Flatten(seq.Children[i], (prefix ?? "") + ":" + i.ToString(System.Globalization.CultureInfo.InvariantCulture), data);
                }

                break;
            case YamlScalarNode scalar when prefix is not null:
                data[prefix] = scalar.Value;
                break;
        }
    }
}
