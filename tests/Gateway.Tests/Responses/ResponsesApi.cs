using System.Net;
using System.Text.Json;
using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.Responses;

/// <summary>What the /v1/responses tests share, whichever store the gateway keeps responses in.</summary>
internal static class ResponsesApi
{
    /// <summary>Settings for a second key of another tenant (<c>other/team/key</c>).</summary>
    public static Dictionary<string, string?> OtherTenant(string key) => TestGateway.KeySettings((key, "other/team/key"));

    /// <summary>POST /v1/responses; asserts the status (the body in the message) and returns the parsed body.</summary>
    public static async Task<JsonElement> PostAsync(HttpClient c, string json, HttpStatusCode expected = HttpStatusCode.OK)
    {
        var resp = await c.PostAsync("/v1/responses", TestGateway.Json(json));
        string text = await resp.Content.ReadAsStringAsync();
        Assert.True(expected == resp.StatusCode, text);
        return JsonDocument.Parse(text).RootElement.Clone();
    }

    /// <summary>
    /// A response stored by <paramref name="owner"/> can be neither read, deleted nor chained by <paramref name="other"/>
    /// (another tenant), and is still there for <paramref name="ownerAfter"/>.
    /// </summary>
    public static async Task AssertAnotherTenantSeesNothingAsync(HttpClient owner, HttpClient other, HttpClient ownerAfter)
    {
        string id = (await PostAsync(owner, """{"model":"llama3-8b","input":"secret"}""")).GetProperty("id").GetString()!;
        Assert.Equal(HttpStatusCode.NotFound, (await other.GetAsync($"/v1/responses/{id}")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await other.DeleteAsync($"/v1/responses/{id}")).StatusCode);
        var e = await PostAsync(other, $$"""{"model":"llama3-8b","previous_response_id":"{{id}}","input":"more"}""", HttpStatusCode.BadRequest);
        Assert.Equal("previous_response_id", e.GetProperty("error").GetProperty("param").GetString());
        Assert.Equal(HttpStatusCode.OK, (await ownerAfter.GetAsync($"/v1/responses/{id}")).StatusCode);
    }
}
