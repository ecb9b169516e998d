using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.FileProviders;
using Microsoft.Extensions.Primitives;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Gateway.Configuration;

/// <summary>Adds a YAML file as a configuration source (flattened to <c>a:b:0:c</c> keys, as JSON files are).</summary>
public static class YamlConfigurationExtensions
{
    /// <summary>
    /// Adds <paramref name="path"/> (it must exist and parse now). With <paramref name="reloadOnChange"/> the file is
    /// watched and re-read when it changes (a Kubernetes ConfigMap update: set <c>DOTNET_USE_POLLING_FILE_WATCHER</c>,
    /// as the chart does, because the kubelet swaps a symlink); a re-read that fails (missing file, bad YAML) keeps the
    /// previous values and is reported by <see cref="YamlFileConfigurationProvider.LastReloadError"/>.
    /// </summary>
    public static IConfigurationBuilder AddYamlFile(this IConfigurationBuilder builder, string path, bool reloadOnChange = false)
    {
        ArgumentNullException.ThrowIfNull(builder);
        return builder.Add(new YamlFileConfigurationSource(path, reloadOnChange));
    }

    /// <summary>Flattens a YAML text (used by tests and the file source).</summary>
    internal static Dictionary<string, string?> FlattenYaml(string yaml) => FlattenYaml(new StringReader(yaml));

    internal static Dictionary<string, string?> FlattenYaml(TextReader yaml)
    {
        var data = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        var stream = new YamlStream();
        stream.Load(yaml);
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

/// <summary>Source of <see cref="YamlFileConfigurationProvider"/>.</summary>
internal sealed class YamlFileConfigurationSource(string path, bool reloadOnChange) : IConfigurationSource
{
    public IConfigurationProvider Build(IConfigurationBuilder builder) => new YamlFileConfigurationProvider(path, reloadOnChange);
}

/// <summary>
/// A YAML file as configuration, optionally re-read on change. Unlike the file providers of the framework, a failed
/// re-read never empties the configuration: the last good values stay (a half-written or deleted file must not
/// reset every tenant's weight to the defaults).
/// </summary>
public sealed class YamlFileConfigurationProvider : ConfigurationProvider, IDisposable
{
    private static readonly TimeSpan s_settle = TimeSpan.FromMilliseconds(250);
    private readonly string _path;
    private readonly PhysicalFileProvider? _files;
    private readonly IDisposable? _watch;
    private int _pending;

    internal YamlFileConfigurationProvider(string path, bool reloadOnChange)
    {
        _path = Path.GetFullPath(path);
        if (reloadOnChange)
        {
            _files = new PhysicalFileProvider(Path.GetDirectoryName(_path)!);
            string name = Path.GetFileName(_path);
            _watch = ChangeToken.OnChange(() => _files.Watch(name), OnFileChanged);
        }
    }

    /// <summary>Why the last re-read was not applied (null when it was).</summary>
    public string? LastReloadError { get; private set; }

    /// <inheritdoc />
    public override void Load() => Data = Read(_path);

    /// <inheritdoc />
    public void Dispose()
    {
        _watch?.Dispose();
        _files?.Dispose();
    }

    private static Dictionary<string, string?> Read(string path)
    {
        using var reader = File.OpenText(path);
        return YamlConfigurationExtensions.FlattenYaml(reader);
    }

    private void OnFileChanged()
    {
        // Writers emit several change notifications per save: let the file settle, then read it once.
        if (Interlocked.Exchange(ref _pending, 1) == 1)
        {
            return;
        }

        _ = Task.Delay(s_settle).ContinueWith(_ =>
        {
            Volatile.Write(ref _pending, 0);
            try
            {
                Data = Read(_path);
                LastReloadError = null;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or YamlException)
            {
                LastReloadError = e.Message;
                return;
            }

            OnReload();
        }, TaskScheduler.Default);
    }
}
