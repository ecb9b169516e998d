// A plain YARP reverse proxy configured from configuration only: one route (/{**catch-all}) to one cluster with one
// destination. The baseline the gateway's overhead is measured against (docs/benchmarks.md).
// usage: dotnet run -c Release --project bench/PlainYarp -- --urls http://127.0.0.1:8090 --destination http://127.0.0.1:9001
var builder = WebApplication.CreateSlimBuilder(args);
builder.Logging.SetMinimumLevel(LogLevel.Warning);
string destination = builder.Configuration["destination"] ?? "http://127.0.0.1:9001";
builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
{
    ["ReverseProxy:Routes:all:ClusterId"] = "workers",
    ["ReverseProxy:Routes:all:Match:Path"] = "/{**catch-all}",
    ["ReverseProxy:Clusters:workers:Destinations:w1:Address"] = destination,
});
builder.Services.AddReverseProxy().LoadFromConfig(builder.Configuration.GetSection("ReverseProxy"));
var app = builder.Build();
app.MapReverseProxy();
app.Run();
