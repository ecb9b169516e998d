using System.CommandLine;
using System.CommandLine.Invocation;

namespace Cli;

/// <summary>
/// Runs a tool's command line: <c>--help</c> and <c>--version</c> as System.CommandLine does; otherwise the command's
/// binder reads the parse (<see cref="CliInput"/>), and when anything is wrong every error is written to stderr as
/// <c>error: …</c> lines with exit code 2 (or the tool's own, <see cref="ErrorExitCode"/>) — syntax errors and the binder's checks together, so one run shows them all.
/// </summary>
public sealed class CliApp
{
    /// <summary>Exit code of a command line with errors.</summary>
    public const int UsageError = 2;

    private readonly Dictionary<Command, Func<CliInput, Func<int>>> _handlers = [];

    public CliApp(RootCommand root, int errorExitCode = UsageError)
    {
        ArgumentNullException.ThrowIfNull(root);
        Root = root;
        ErrorExitCode = errorExitCode;
    }

    public RootCommand Root { get; }

    /// <summary>Exit code of a command line with errors (2 unless the tool documents another).</summary>
    public int ErrorExitCode { get; }

    /// <summary>
    /// Binds <paramref name="command"/>: <paramref name="bind"/> reads the options and records every problem on the input;
    /// <paramref name="run"/> gets the bound value only when there is none.
    /// </summary>
    public void Handle<T>(Command command, Func<CliInput, T> bind, Func<T, int> run)
    {
        ArgumentNullException.ThrowIfNull(command);
        ArgumentNullException.ThrowIfNull(bind);
        ArgumentNullException.ThrowIfNull(run);
        _handlers[command] = input =>
        {
            T bound = bind(input);
            return () => run(bound);
        };
        command.SetAction(parse => Run(command, new CliInput(parse), Console.Error));
    }

    /// <summary>Runs the command line; returns the process exit code.</summary>
    public int Invoke(IReadOnlyList<string> args, TextWriter? stdout = null, TextWriter? stderr = null)
    {
        ArgumentNullException.ThrowIfNull(args);
        stdout ??= Console.Out;
        stderr ??= Console.Error;
        var parse = Root.Parse(args);
        var command = parse.CommandResult.Command;
        bool bound = _handlers.ContainsKey(command) && (parse.Action is null or ParseErrorAction || ReferenceEquals(parse.Action, command.Action));
        return bound ? Run(command, new CliInput(parse), stderr)
            : parse.Invoke(new InvocationConfiguration { Output = stdout, Error = stderr }); // --help, --version
    }

    private int Run(Command command, CliInput input, TextWriter stderr)
    {
        var run = _handlers[command](input);
        if (input.Errors.Count > 0)
        {
            foreach (var e in input.Errors)
            {
                stderr.WriteLine("error: " + e);
            }

            stderr.WriteLine("run with --help for every option and its default");
            return ErrorExitCode;
        }

        return run();
    }
}
