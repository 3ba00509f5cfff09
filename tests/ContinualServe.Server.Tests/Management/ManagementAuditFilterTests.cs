using ContinualServe.Server.Inference;
using ContinualServe.Server.Management;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Shouldly;
using Xunit;

namespace ContinualServe.Server.Tests.Management;

/// <summary>Tests of which management requests the audit filter logs as event 440.</summary>
public sealed class ManagementAuditFilterTests
{
    [Theory]
    [InlineData("POST", StatusCodes.Status200OK, true)]
    [InlineData("POST", StatusCodes.Status409Conflict, true)]
    [InlineData("GET", StatusCodes.Status200OK, false)]
    [InlineData("GET", StatusCodes.Status404NotFound, true)]
    [InlineData("GET", StatusCodes.Status409Conflict, true)]
    [InlineData("HEAD", StatusCodes.Status200OK, false)]
    [InlineData("HEAD", StatusCodes.Status404NotFound, true)]
    public async Task AuditLogsChangesAndErrors(string method, int status, bool logged)
    {
        var logger = new LogRecorder<ManagementAuditFilterTests>(LogLevel.Information);
        var filter = new ManagementAuditFilter(logger);
        var context = new DefaultHttpContext();
        context.Request.Method = method;
        context.Request.Path = "/manage/v1/golden-set";

        await filter.InvokeAsync(
            EndpointFilterInvocationContext.Create(context),
            _ => ValueTask.FromResult<object?>(Results.StatusCode(status)));

        logger.Entries.Count(entry => entry.EventId == 440).ShouldBe(logged ? 1 : 0);
    }

    // A version segment is a route parameter that the client chose, up to Kestrel's 8 KiB request line.
    [Fact]
    public async Task AuditTruncatesLongPath()
    {
        var logger = new LogRecorder<ManagementAuditFilterTests>(LogLevel.Information);
        var filter = new ManagementAuditFilter(logger);
        var context = new DefaultHttpContext();
        context.Request.Method = "POST";
        context.Request.Path = "/manage/v1/versions/" + new string('7', 4_000) + "/promote";

        await filter.InvokeAsync(
            EndpointFilterInvocationContext.Create(context),
            _ => ValueTask.FromResult<object?>(Results.StatusCode(StatusCodes.Status400BadRequest)));

        string message = logger.Entries.Single(entry => entry.EventId == 440).Message;
        message.ShouldContain(ClientText.Truncate(context.Request.Path.ToString()));
        message.Length.ShouldBeLessThan(300);
    }
}
