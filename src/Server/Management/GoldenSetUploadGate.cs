namespace ContinualServe.Server.Management;

/// <summary>
/// Admits one golden-set upload at a time into the process. Parsing an upload takes about ten times its size in
/// memory (an 8 MiB set of Fashion-MNIST images took about 80 MB), so concurrent uploads would multiply that.
/// </summary>
public sealed class GoldenSetUploadGate : IDisposable
{
    private readonly SemaphoreSlim semaphore = new(1, 1);

    /// <summary>Returns true when no other upload runs, and the caller must then call <see cref="Exit"/>.</summary>
    public bool TryEnter() => semaphore.Wait(0);

    /// <summary>Ends the upload that <see cref="TryEnter"/> admitted.</summary>
    public void Exit() => semaphore.Release();

    public void Dispose() => semaphore.Dispose();
}
