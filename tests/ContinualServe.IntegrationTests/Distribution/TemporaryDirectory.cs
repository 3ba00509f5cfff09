namespace ContinualServe.IntegrationTests.Distribution;

/// <summary>A fresh directory under the temporary folder, deleted with everything in it on dispose.</summary>
internal sealed class TemporaryDirectory : IDisposable
{
    public string Path { get; } = Directory.CreateDirectory(
        System.IO.Path.Combine(System.IO.Path.GetTempPath(), "continualserve-tests", Guid.NewGuid().ToString("N"))).FullName;

    public void Dispose() => Directory.Delete(Path, recursive: true);
}
