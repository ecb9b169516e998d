using Microsoft.AspNetCore.Http;

namespace Gateway.Auth;

/// <summary>
/// Where a client puts its API key: <c>Authorization: Bearer &lt;key&gt;</c> (OpenAI clients, and Anthropic clients
/// given an auth token) or <c>x-api-key: &lt;key&gt;</c> (Anthropic clients). Authorization wins when both are sent.
/// </summary>
public static class ApiCredential
{
    /// <summary>The header name Anthropic clients send their key in.</summary>
    public const string ApiKeyHeader = "x-api-key";

    /// <summary>The credential in the form <see cref="ApiKeyAuthenticator.Authenticate"/> reads (<c>Bearer &lt;key&gt;</c>), or "".</summary>
    public static string Of(IHeaderDictionary headers)
    {
        string authorization = headers.Authorization.ToString();
        if (authorization.Length > 0)
        {
            return authorization;
        }

        string key = headers[ApiKeyHeader].ToString();
        return key.Length > 0 ? "Bearer " + key : "";
    }
}
