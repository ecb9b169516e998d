#pragma warning disable OPENAI001 // the Responses client is marked experimental
using System.ClientModel;
using Gateway.Tests.Infrastructure;
using OpenAI;
using OpenAI.Responses;

namespace Gateway.Tests.Responses;

/// <summary>The official OpenAI .NET client's Responses API pointed at the gateway, unchanged apart from base URL and key.</summary>
public sealed class OpenAiResponsesClientTests : OneFakeWorkerGateway
{
    private ResponsesClient Client() =>
        new OpenAIClient(new ApiKeyCredential(TestGateway.DemoKey), new OpenAIClientOptions { Endpoint = new Uri(Host.BaseAddress, "v1") }).GetResponsesClient();

    private static ResponseTool Lookup() =>
        ResponseTool.CreateFunctionTool("lookup", BinaryData.FromString("""{"type":"object","properties":{"q":{"type":"string"}}}"""), strictModeEnabled: false, functionDescription: "look it up");

    [Fact]
    public async Task CreateResponse_ThenChainWithFunctionOutput_ReadsTextCallsAndUsage()
    {
        var client = Client();
        var options = new CreateResponseOptions { Model = "llama3-8b", Tools = { Lookup() } };
        options.InputItems.Add(ResponseItem.CreateUserMessageItem("find it"));
        ResponseResult first = await client.CreateResponseAsync(options);
        var call = Assert.IsType<FunctionCallResponseItem>(first.OutputItems[0]);
        Assert.Equal("lookup", call.FunctionName);
        Assert.Equal(3, first.Usage.InputTokenDetails.CachedTokenCount);

        var next = new CreateResponseOptions { Model = "llama3-8b", PreviousResponseId = first.Id };
        next.InputItems.Add(ResponseItem.CreateFunctionCallOutputItem(call.CallId, "found"));
        ResponseResult second = await client.CreateResponseAsync(next);
        Assert.Equal("Hello from fake", second.GetOutputText());
        Assert.Equal(first.Id, second.PreviousResponseId);
        var roles = System.Text.Json.JsonDocument.Parse(Upstream.Requests.Last().Body).RootElement.GetProperty("messages").EnumerateArray().Select(m => m.GetProperty("role").GetString());
        Assert.Equal(["user", "assistant", "tool"], roles);
    }

    [Fact]
    public async Task CreateResponseStreaming_WithTools_StreamsArgumentsTextAndCompletion()
    {
        var options = new CreateResponseOptions { Model = "llama3-8b", Tools = { Lookup() }, StreamingEnabled = true };
        options.InputItems.Add(ResponseItem.CreateUserMessageItem("find it"));
        var text = new System.Text.StringBuilder();
        var args = new System.Text.StringBuilder();
        ResponseResult? completed = null;
        await foreach (var update in await Client().CreateResponseStreamingAsync(options))
        {
            switch (update)
            {
                case StreamingResponseOutputTextDeltaUpdate d:
                    text.Append(d.Delta);
                    break;
                case StreamingResponseFunctionCallArgumentsDeltaUpdate a:
                    args.Append(a.Delta);
                    break;
                case StreamingResponseCompletedUpdate c:
                    completed = c.Response;
                    break;
            }
        }

        Assert.Equal("tok1 tok2 tok3 tok4 ", text.ToString());
        Assert.NotNull(completed);
        Assert.Equal(ResponseStatus.Completed, completed!.Status);
        Assert.Equal(2, completed.OutputItems.Count);
        Assert.Equal(5, completed.Usage.OutputTokenCount);
    }
}
