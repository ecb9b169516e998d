using Gateway.Auth;
using Gateway.Hosting;

// `dotnet run --project src/Gateway -- hash-key --secret S --key K` prints the digest to put in Gateway:Auth:Keys.
if (args.Length > 0 && args[0] == "hash-key")
{
    string? secret = null, key = null;
    for (int i = 1; i < args.Length - 1; i++)
    {
        if (args[i] == "--secret") { secret = args[i + 1]; }
        if (args[i] == "--key") { key = args[i + 1]; }
    }

    secret ??= Environment.GetEnvironmentVariable("Gateway__Auth__ServerSecret");
    key ??= Console.In.ReadLine();
    if (string.IsNullOrEmpty(secret) || string.IsNullOrEmpty(key))
    {
        Console.Error.WriteLine("usage: hash-key --secret SECRET [--key KEY | key on stdin]");
        return 2;
    }

    Console.WriteLine(ApiKeyAuthenticator.HashKey(secret, key));
    return 0;
}

var app = GatewayHost.Build(args);
await app.RunAsync();
return 0;
