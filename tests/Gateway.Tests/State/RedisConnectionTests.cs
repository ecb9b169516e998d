using Gateway.State;
using StackExchange.Redis;

namespace Gateway.Tests.State;

/// <summary>The gateway's StackExchange.Redis configuration against a real redis-server: fail fast, reconnect, health events, timings.</summary>
public sealed class RedisConnectionTests : IAsyncLifetime
{
    private RedisServer _server = null!;

    public async Task InitializeAsync() => _server = await RedisServer.StartAsync();

    public async Task DisposeAsync() => await _server.DisposeAsync();

    [Fact]
    public void ParseOptions_GatewayFormat_MapsHostPortPasswordUserDb_AndFailsFast()
    {
        var o = RedisConnection.ParseOptions("redis.local:6380,password=s3cret,db=2,user=gw");
        Assert.Equal("redis.local:6380", Assert.Single(o.EndPoints).ToString()?.Replace("Unspecified/", "", StringComparison.Ordinal));
        Assert.Equal(("s3cret", 2, "gw"), (o.Password, o.DefaultDatabase, o.User));
        Assert.False(o.AbortOnConnectFail);
        Assert.Same(BacklogPolicy.FailFast, o.BacklogPolicy);
        var ex = Assert.Throws<FormatException>(() => RedisConnection.ParseOptions("h:1,password=hunter2-secret,bogus=1"));
        Assert.DoesNotContain("hunter2-secret", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ServerKilledAndRestarted_FailsFast_RaisesEventsAndRecovers()
    {
        await using var c = await _server.ConnectAsync();
        var ops = new List<(string Op, bool Failed)>();
        c.CommandObserver = (op, _, failed) => { lock (ops) { ops.Add((op, failed)); } };
        int restored = 0;
        c.Reconnected += () => Interlocked.Increment(ref restored);
        await c.RunAsync("SET", db => db.StringSetAsync("k", "v"));
        _server.Kill();
        await RedisServer.WaitUntilAsync(() => !c.IsConnected, "the connection notices the server is gone");
        var ex = await Record.ExceptionAsync(() => c.RunAsync("GET", db => db.StringGetAsync("k")));
        Assert.True(ex is not null && RedisConnection.IsUnavailable(ex), ex?.ToString());
        await _server.RestartAsync();
        await RedisServer.WaitUntilAsync(() => c.IsConnected, "the connection is restored", 20_000);
        Assert.True((await c.RunAsync("GET", db => db.StringGetAsync("k"))).IsNull); // no persistence: a fresh server
        Assert.True(restored >= 1);
        lock (ops)
        {
            Assert.Contains(("SET", false), ops);
            Assert.Contains(("GET", true), ops);
            Assert.Contains(("GET", false), ops);
        }
    }

    [Fact]
    public async Task Connect_NothingListening_ReturnsDisconnected_ThenConnectsWhenServerStarts()
    {
        _server.Kill();
        await using var c = await _server.ConnectAsync(",connectTimeout=300");
        Assert.False(c.IsConnected);
        await Assert.ThrowsAsync<RedisConnectionException>(() => c.RunAsync("PING", db => db.PingAsync()));
        await _server.RestartAsync();
        await RedisServer.WaitUntilAsync(() => c.IsConnected, "the connection comes up", 20_000);
        await c.RunAsync("PING", db => db.PingAsync());
    }
}

public sealed class RedisConnectionAuthTests : IAsyncLifetime
{
    private RedisServer _server = null!;

    public async Task InitializeAsync() => _server = await RedisServer.StartAsync(password: "test-pass-123");

    public async Task DisposeAsync() => await _server.DisposeAsync();

    [Fact]
    public async Task PasswordAndDatabase_AuthenticateAndSelect()
    {
        await using var db3 = await _server.ConnectAsync(",db=3");
        await db3.RunAsync("SET", db => db.StringSetAsync("only-in-3", "x"));
        await using var db0 = await _server.ConnectAsync();
        Assert.True((await db0.RunAsync("GET", db => db.StringGetAsync("only-in-3"))).IsNull);
        Assert.Equal("x", (string?)await db3.RunAsync("GET", db => db.StringGetAsync("only-in-3")));
    }
}
