using Xunit;

namespace ContinualServe.Server.Tests.Distribution;

/// <summary>Fact that runs only on Linux with the flock(1) command, which holds a download lock from another process.</summary>
public sealed class FlockFactAttribute : FactAttribute
{
    public FlockFactAttribute()
    {
        if (!OperatingSystem.IsLinux() || !File.Exists("/usr/bin/flock"))
        {
            Skip = "Download locks are taken with flock, checked here on Linux with the flock command of util-linux.";
        }
    }
}
