using Xunit;

namespace ContinualServe.Model.Tests.Store;

/// <summary>
/// Fact that runs only on Unix without root, because file permissions do not stop root from reading a file, and Windows
/// has no Unix file modes.
/// </summary>
public sealed class UnprivilegedFactAttribute : FactAttribute
{
    public UnprivilegedFactAttribute()
    {
        if (OperatingSystem.IsWindows() || Environment.IsPrivilegedProcess)
        {
            Skip = "A file without read permission needs Unix and a process that is not root, because root reads any file.";
        }
    }
}
