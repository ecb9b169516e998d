using Gateway.State;

namespace Gateway.Tests.State;

public sealed class RedisClientTests : IAsyncLifetime
{
    private RedisServer _server = null!;

    public async Task InitializeAsync() => _server = await RedisServer.StartAsync();

    public async Task DisposeAsync() => await _server.DisposeAsync();

    [Fact]
    public async Task Execute_SetThenGet_RoundTripsBinarySafeText()
    {
        await using var c = await RedisClient.ConnectAsync(_server.Options);
        const string value = "héllo\r\nworld $3 *1 :x";
        Assert.Equal("OK", (await c.ExecuteAsync("SET", "k", value)).Text);
        Assert.Equal(value, (await c.ExecuteAsync("GET", "k")).Text);
        Assert.True((await c.ExecuteAsync("GET", "missing")).IsNull);
        Assert.Equal(3, (await c.ExecuteAsync("RPUSH", "l", "a", "b", "c")).Integer);
        var list = await c.ExecuteAsync("LRANGE", "l", "0", "-1");
        Assert.Equal("a,b,c", string.Join(",", list.Items!.Select(i => i.Text)));
    }

    [Fact]
    public async Task Execute_ManyConcurrentCommandsOnOneConnection_RepliesMatchedInOrder()
    {
        await using var c = await RedisClient.ConnectAsync(_server.Options);
        var tasks = Enumerable.Range(0, 3000).Select(async i =>
        {
            var reply = await c.ExecuteAsync("ECHO", "payload-" + i);
            Assert.Equal("payload-" + i, reply.Text);
        });
        await Task.WhenAll(tasks);
        Assert.Equal(1, c.ConnectCount);
    }

    [Fact]
    public async Task Pipeline_ErrorReplyInTheMiddle_OthersStillAnswered()
    {
        await using var c = await RedisClient.ConnectAsync(_server.Options);
        var replies = await c.PipelineAsync([["SET", "a", "1"], ["INCR", "nope", "extra"], ["INCRBY", "a", "4"], ["GET", "a"]]);
        Assert.Equal(RespKind.Error, replies[1].Kind);
        Assert.Equal(5, replies[2].Integer);
        Assert.Equal("5", replies[3].Text);
        await Assert.ThrowsAsync<RedisServerException>(() => c.ExecuteAsync("HSET", "a", "f", "v")); // WRONGTYPE
        Assert.Equal("PONG", (await c.ExecuteAsync("PING")).Text);
    }

    [Fact]
    public async Task Script_AfterScriptFlush_FallsBackFromEvalShaToEval()
    {
        await using var c = await RedisClient.ConnectAsync(_server.Options);
        var script = new LuaScript("return redis.call('INCRBY', KEYS[1], ARGV[1])");
        await c.ExecuteAsync("SCRIPT", "FLUSH");
        Assert.Equal(0, (await c.ExecuteAsync("SCRIPT", "EXISTS", script.Sha1)).Items![0].Integer);
        Assert.Equal(7, (await c.ScriptAsync(script, ["n"], ["7"])).Integer); // NOSCRIPT -> EVAL
        Assert.Equal(1, (await c.ExecuteAsync("SCRIPT", "EXISTS", script.Sha1)).Items![0].Integer);
        Assert.Equal(10, (await c.ScriptAsync(script, ["n"], ["3"])).Integer); // EVALSHA now
    }

    [Fact]
    public async Task CommandTimeout_ServerPaused_TimesOutThenLateReplyIsDiscardedAndOrderHolds()
    {
        await using var admin = await RedisClient.ConnectAsync(_server.Options);
        await using var c = await RedisClient.ConnectAsync(_server.Options with { CommandTimeout = TimeSpan.FromMilliseconds(200) });
        await admin.ExecuteAsync("CLIENT", "PAUSE", "800", "ALL");
        await Assert.ThrowsAsync<TimeoutException>(() => c.ExecuteAsync("ECHO", "late"));
        await Task.Delay(900);
        Assert.Equal("next", (await c.ExecuteAsync("ECHO", "next")).Text);
    }

    [Fact]
    public async Task Reconnect_ServerKilledAndRestarted_FailsFastThenRecovers()
    {
        await using var c = await RedisClient.ConnectAsync(_server.Options);
        var reconnected = 0;
        c.Reconnected += () => Interlocked.Increment(ref reconnected);
        await c.ExecuteAsync("SET", "k", "v");
        _server.Kill();
        await RedisServer.WaitUntilAsync(() => !c.IsConnected, "the client notices the server is gone");
        var ex = await Record.ExceptionAsync(() => c.ExecuteAsync("PING"));
        Assert.IsType<RedisConnectionException>(ex);
        await _server.RestartAsync();
        await RedisServer.WaitUntilAsync(() => c.IsConnected, "the client reconnects");
        Assert.Equal("PONG", (await c.ExecuteAsync("PING")).Text);
        Assert.True((await c.ExecuteAsync("GET", "k")).IsNull); // no persistence: a fresh server
        Assert.Equal(1, reconnected);
    }

    [Fact]
    public async Task ConnectInBackground_ServerNotUpYet_ConnectsWhenItStarts()
    {
        _server.Kill();
        await using var c = RedisClient.ConnectInBackground(_server.Options);
        await Assert.ThrowsAsync<RedisConnectionException>(() => c.ExecuteAsync("PING"));
        await _server.RestartAsync();
        await RedisServer.WaitUntilAsync(() => c.IsConnected, "the client connects");
        Assert.Equal("PONG", (await c.ExecuteAsync("PING")).Text);
    }

    [Fact]
    public async Task Connect_NothingListening_ThrowsConnectionException()
    {
        _server.Kill();
        await Assert.ThrowsAsync<RedisConnectionException>(() => RedisClient.ConnectAsync(_server.Options));
    }

    [Fact]
    public void Options_Parse_ReadsHostPortPasswordDb()
    {
        var o = RedisOptions.Parse("redis.local:6380,password=s3cret,db=2,user=gw");
        Assert.Equal(("redis.local", 6380, "s3cret", 2, "gw"), (o.Host, o.Port, o.Password, o.Database, o.User));
        Assert.Throws<FormatException>(() => RedisOptions.Parse("h:1,bogus=1"));
    }
}

public sealed class RedisClientAuthTests : IAsyncLifetime
{
    private RedisServer _server = null!;

    public async Task InitializeAsync() => _server = await RedisServer.StartAsync(password: "test-pass-123");

    public async Task DisposeAsync() => await _server.DisposeAsync();

    [Fact]
    public async Task Connect_WithPasswordAndDatabase_AuthenticatesAndSelects()
    {
        await using var db3 = await RedisClient.ConnectAsync(_server.Options with { Database = 3 });
        await db3.ExecuteAsync("SET", "only-in-3", "x");
        await using var db0 = await RedisClient.ConnectAsync(_server.Options);
        Assert.True((await db0.ExecuteAsync("GET", "only-in-3")).IsNull);
        Assert.Equal("x", (await db3.ExecuteAsync("GET", "only-in-3")).Text);
    }

    [Fact]
    public async Task Connect_WrongPassword_FailsWithoutEchoingIt()
    {
        var ex = await Assert.ThrowsAsync<RedisServerException>(() => RedisClient.ConnectAsync(_server.Options with { Password = "wrong-pw-xyz" }));
        Assert.DoesNotContain("wrong-pw-xyz", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Reconnect_ReplaysAuthAndSelect()
    {
        await using var c = await RedisClient.ConnectAsync(_server.Options with { Database = 5 });
        _server.Kill();
        await _server.RestartAsync();
        await RedisServer.WaitUntilAsync(() => c.IsConnected, "reconnect with AUTH");
        await c.ExecuteAsync("SET", "k", "v");
        Assert.Equal("5", (await c.ExecuteAsync("CLIENT", "INFO")).Text!.Split(' ').First(p => p.StartsWith("db=", StringComparison.Ordinal))[3..]);
    }
}
