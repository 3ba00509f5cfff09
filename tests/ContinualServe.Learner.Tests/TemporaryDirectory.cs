namespace ContinualServe.Learner.Tests;

/// <summary>
/// A fresh directory under the temporary folder, named with <c>prefix</c>. Dispose deletes it with everything in it,
/// and does nothing when a test deleted it already.
/// </summary>
internal sealed class TemporaryDirectory(string prefix) : IDisposable
{
    public string Path { get; } = Directory.CreateTempSubdirectory(prefix).FullName;

    public void Dispose()
    {
        if (Directory.Exists(Path))
        {
            Directory.Delete(Path, recursive: true);
        }
    }
}
