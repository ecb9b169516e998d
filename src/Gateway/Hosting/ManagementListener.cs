using System.Net;
using Gateway.Proxy;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace Gateway.Hosting;

/// <summary>
/// The operator listener (<see cref="Configuration.GatewayOptions.ManagementListen"/>): <c>/metrics</c> and <c>/status</c>
/// carry every tenant's figures, so with it configured they are answered only on connections accepted there (Kestrel
/// marks those connections; a Host header cannot fake it), the API listener answers them 404 and the management
/// listener answers the OpenAI API 404. Probes (<c>/healthz</c>, <c>/readyz</c>) answer on both.
/// </summary>
internal static class ManagementListener
{
    private const string ConnectionItem = "gateway.management";

    /// <summary>The IP a listen URL names (<c>localhost</c> = loopback; <c>*</c>, <c>+</c>, <c>0.0.0.0</c> = any).</summary>
    public static IPAddress Address(Uri url) => url.Host switch
    {
        "localhost" => IPAddress.Loopback,
        "*" or "+" or "0.0.0.0" => IPAddress.Any,
        _ => IPAddress.Parse(url.Host.Trim('[', ']')),
    };

    /// <summary>Listens on <paramref name="url"/> and marks its connections as management ones.</summary>
    public static void Listen(KestrelServerOptions kestrel, Uri url) =>
        kestrel.Listen(Address(url), url.Port, o => o.Use(next => connection =>
        {
            connection.Items[ConnectionItem] = true;
            return next(connection);
        }));

    /// <summary>Splits the paths between the two listeners (only when a management listener is configured).</summary>
    public static void UseSplit(WebApplication app) => app.Use((context, next) =>
    {
        string path = context.Request.Path.Value ?? "";
        if (path is "/healthz" or "/readyz")
        {
            return next(context);
        }

        bool management = context.Features.Get<IConnectionItemsFeature>()?.Items.ContainsKey(ConnectionItem) == true;
        bool operatorPath = path is "/metrics" or "/status";
        return management == operatorPath
            ? next(context)
            : OpenAiErrors.WriteAsync(context, OpenAiErrors.NotFound(context.Request.Method, context.Request.Path));
    });
}
