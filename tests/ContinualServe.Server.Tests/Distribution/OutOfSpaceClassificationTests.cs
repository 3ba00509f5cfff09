using ContinualServe.Server.Distribution;
using Shouldly;
using Xunit;

namespace ContinualServe.Server.Tests.Distribution;

/// <summary>
/// Errors of a download's write that count as a full replica volume. .NET on Linux puts the errno in HResult, so the
/// cases are built with the errno that a failed write returns there (the test projects build for linux-x64 only). A real
/// quota is not provoked here because it needs a file system mounted with quotas.
/// </summary>
public sealed class OutOfSpaceClassificationTests
{
    [Theory]
    [InlineData(28, true)] // ENOSPC: no space left on device
    [InlineData(122, true)] // EDQUOT: disk quota exceeded
    [InlineData(5, false)] // EIO: input/output error
    [InlineData(30, false)] // EROFS: read-only file system
    [InlineData(13, false)] // EACCES: permission denied
    public void ErrnoClassifiesFullVolume(int errno, bool full)
    {
        var exception = new IOException($"write failed with errno {errno}", errno);

        VersionDownloader.IsOutOfSpace(exception).ShouldBe(full);
    }
}
