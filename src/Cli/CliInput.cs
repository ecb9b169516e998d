using System.CommandLine;
using System.Globalization;
using System.Numerics;

namespace Cli;

/// <summary>
/// One parsed command line as a tool binds it: values read without throwing, and every error found — System.CommandLine's
/// own (unknown tokens, missing values, values of the wrong type) first, then each check the binder makes. The tool
/// reports them all at once (<see cref="CliApp"/>), never only the first.
/// </summary>
public sealed class CliInput
{
    private readonly List<string> _errors;

    public CliInput(ParseResult parse)
    {
        ArgumentNullException.ThrowIfNull(parse);
        Parse = parse;
        _errors = [.. parse.Errors.Select(e => e.Message)];
    }

    public ParseResult Parse { get; }

    /// <summary>Every error so far, in the order found.</summary>
    public IReadOnlyList<string> Errors => _errors;

    /// <summary>Adds an error (a sentence naming the option, e.g. "--workers must be in [1, 4096], got 0").</summary>
    public void Error(string message) => _errors.Add(message);

    /// <summary>True when the option was written on the command line (not only defaulted).</summary>
    public bool Given(Option option) => Parse.GetResult(option) is { Implicit: false };

    /// <summary>
    /// The option's value, or its default when absent. A value that did not parse is already an error and reads as the
    /// default, so later checks do not report the same mistake again.
    /// </summary>
    public T Get<T>(Option<T> option) => TryGet(option, out var value) ? value : Fallback(option);

    /// <summary>The value when written on the command line and valid, else <c>default</c> (null for nullable options).</summary>
    public T? GetGiven<T>(Option<T> option) => Given(option) && TryGet(option, out var value) ? value : default;

    /// <summary>
    /// The option's value, with an error unless it lies in [<paramref name="min"/>, <paramref name="max"/>] (NaN never does);
    /// a value out of range reads as the default.
    /// </summary>
    public T InRange<T>(Option<T> option, T min, T max)
        where T : INumber<T>
    {
        ArgumentNullException.ThrowIfNull(option);
        if (!TryGet(option, out var value))
        {
            return Fallback(option);
        }

        if (!(value >= min && value <= max))
        {
            Error(string.Create(CultureInfo.InvariantCulture, $"{option.Name} must be in [{min}, {max}], got {value}"));
            return Fallback(option);
        }

        return value;
    }

    /// <summary>The option's value, with an error unless it is one of <paramref name="allowed"/> (absent: null, no error).</summary>
    public string? OneOf(Option<string?> option, params string[] allowed)
    {
        ArgumentNullException.ThrowIfNull(option);
        ArgumentNullException.ThrowIfNull(allowed);
        string? value = GetGiven(option);
        if (value is not null && Array.IndexOf(allowed, value) < 0)
        {
            Error($"{option.Name} must be one of {string.Join(", ", allowed)}, got '{value}'");
            return null;
        }

        return value;
    }

    /// <summary>An <c>on|off</c> option: null when absent or invalid (an error).</summary>
    public bool? OnOff(Option<string?> option) => OneOf(option, "on", "off") switch
    {
        "on" => true,
        "off" => false,
        _ => null,
    };

    // The default of an option made by CliOptions.Create (its factory reads no argument), else default(T).
    private static T Fallback<T>(Option<T> option) => option.DefaultValueFactory is { } factory ? factory(null!) : default!;

    private bool TryGet<T>(Option<T> option, out T value)
    {
        value = default!;
        var result = Parse.GetResult(option);
        if (result is null)
        {
            return true; // absent and without a default
        }

        if (result.Errors.Any())
        {
            return false;
        }

        try
        {
            value = Parse.GetValue(option)!;
            return true;
        }
        catch (InvalidOperationException)
        {
            return false; // a value that could not be read (a missing argument), already among the parse errors
        }
    }
}
