using Llm.Prompt.OpenAi;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Http;

namespace Gateway.Proxy;

/// <summary>
/// The safety net: an exception nothing on the request path caught still answers in OpenAI shape (a malformed
/// request Kestrel reports while the body is read keeps its 4xx; anything else is a 500 <c>internal_error</c>), never
/// an empty 500. ASP.NET Core's exception handler logs it, leaves a started response alone and answers a client that
/// went away with 499.
/// </summary>
internal static class UnhandledErrors
{
    public static void UseOpenAiShapedErrors(this WebApplication app) =>
        app.UseExceptionHandler(new ExceptionHandlerOptions { ExceptionHandler = WriteAsync });

    private static Task WriteAsync(HttpContext context)
    {
        var error = context.Features.Get<IExceptionHandlerFeature>()?.Error is BadHttpRequestException bad && bad.StatusCode is >= 400 and < 500
            ? new OpenAiError(bad.StatusCode, "Malformed request: " + bad.Message, "invalid_request_error", null, "bad_request")
            : OpenAiError.Internal;
        return OpenAiErrors.WriteAsync(context, error);
    }
}
