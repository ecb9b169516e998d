using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;

namespace Cli;

/// <summary>
/// Options whose help line names their default: typed defaults through <see cref="Option{T}.DefaultValueFactory"/>
/// (System.CommandLine prints <c>[default: X]</c>), defaults that live elsewhere (a profile, a scenario file) as text in
/// the same shape. A value option may be repeated and the last value wins (an image's entrypoint sets <c>--urls</c>, a
/// chart's arguments set it again), as the worker's command line always allowed.
/// </summary>
public static class CliOptions
{
    /// <summary>An option with a typed default.</summary>
    public static Option<T> Create<T>(string name, string description, T defaultValue, params string[] aliases)
    {
        if (defaultValue is bool flag)
        {
            // System.CommandLine prints no default for a flag: say it in the same shape.
            return new(name, aliases) { Description = $"{description} [default: {(flag ? "true" : "false")}]", DefaultValueFactory = _ => defaultValue };
        }

        return LastWins(new Option<T>(name, aliases) { Description = description, DefaultValueFactory = _ => defaultValue });
    }

    /// <summary>A value option without a typed default (absent = null), its default described as <paramref name="defaultText"/>.</summary>
    public static Option<T?> OptionalValue<T>(string name, string description, string defaultText, params string[] aliases)
        where T : struct =>
        LastWins(new Option<T?>(name, aliases) { Description = $"{description} [default: {defaultText}]" });

    /// <summary>A text option without a typed default (absent = null), its default described as <paramref name="defaultText"/>.</summary>
    public static Option<string?> OptionalText(string name, string description, string defaultText, params string[] aliases) =>
        LastWins(new Option<string?>(name, aliases) { Description = $"{description} [default: {defaultText}]" });

    /// <summary>Adds every option to the command.</summary>
    public static void AddOptions(this Command command, params Option[] options)
    {
        ArgumentNullException.ThrowIfNull(command);
        ArgumentNullException.ThrowIfNull(options);
        foreach (var o in options)
        {
            command.Options.Add(o);
        }
    }

    // One value per occurrence, any number of occurrences, the last one read.
    private static Option<T> LastWins<T>(Option<T> option)
    {
        option.Arity = ArgumentArity.OneOrMore;
        option.AllowMultipleArgumentsPerToken = false;
        option.CustomParser = ParseLast<T>;
        return option;
    }

    private static T ParseLast<T>(ArgumentResult result)
    {
        string text = result.Tokens[^1].Value;
        var type = Nullable.GetUnderlyingType(typeof(T)) ?? typeof(T);
        var c = CultureInfo.InvariantCulture;
        (object? value, string kind) = type switch
        {
            _ when type == typeof(string) => (text, "text"),
            _ when type == typeof(int) => (int.TryParse(text, NumberStyles.Integer, c, out int i) ? i : null, "an integer"),
            _ when type == typeof(long) => (long.TryParse(text, NumberStyles.Integer, c, out long l) ? l : null, "an integer"),
            _ when type == typeof(double) => (double.TryParse(text, NumberStyles.Float, c, out double d) ? d : null, "a number"),
            _ when type.IsEnum => (Enum.TryParse(type, text, ignoreCase: true, out object? e) ? e : null, "one of " + string.Join(", ", Enum.GetNames(type))),
            _ => throw new NotSupportedException($"options of type {type.Name} are not supported"),
        };
        if (value is null)
        {
            string name = result.Parent is OptionResult o ? o.Option.Name : "an option";
            result.AddError($"{name} must be {kind}, got '{text}'");
            return default!;
        }

        return (T)value;
    }
}
