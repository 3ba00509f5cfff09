using System.Runtime.Versioning;
using ContinualServe.Model.Store;
using Shouldly;
using Xunit;

namespace ContinualServe.Model.Tests.Store;

/// <summary>
/// A pin file that this process may not read, as on a store that another user wrote. Servers and the learner must see
/// an unreadable pin, as they do for one with invalid content, and not an exception that stops their loop.
/// </summary>
public sealed class PinReadFailureTests
{
    [UnprivilegedFact]
    [UnsupportedOSPlatform("windows")]
    public void PinWithoutReadPermissionIsReported()
    {
        string directory = SmallModels.TemporaryDirectory();
        string pin = Path.Combine(directory, StoreControlFiles.PinnedVersionFileName);
        File.WriteAllText(pin, "2");
        File.SetUnixFileMode(pin, UnixFileMode.None);

        bool read = StoreControlFiles.TryReadPinnedVersion(directory, out long? version, out string? problem);

        read.ShouldBeFalse();
        version.ShouldBeNull();
        problem.ShouldNotBeNull().ShouldContain(pin);
    }
}
