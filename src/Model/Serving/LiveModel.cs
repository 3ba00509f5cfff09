namespace ContinualServe.Model.Serving;

/// <summary>
/// The version that serves requests now. <see cref="Swap"/> replaces it atomically without locks;
/// a request that leased the previous version keeps it until its lease ends, and the previous version
/// is disposed when the last such lease ends.
/// </summary>
public sealed class LiveModel : IDisposable
{
    private ServedModel? current;

    public event Action<ServedModel?, ServedModel>? Swapped;

    public long? CurrentVersion => Volatile.Read(ref current)?.Version;

    public bool IsReady => Volatile.Read(ref current) is not null;

    /// <summary>Leases the current version, or returns false when no version has been loaded yet.</summary>
    public bool TryAcquire(out ModelLease lease)
    {
        while (true)
        {
            ServedModel? model = Volatile.Read(ref current);
            if (model is null)
            {
                lease = default;
                return false;
            }

            // Fails only when the model was swapped out and its last lease ended in between: read again.
            if (model.TryAddReference())
            {
                lease = new ModelLease(model);
                return true;
            }
        }
    }

    /// <summary>Makes <paramref name="next"/> current, transferring its initial reference to this holder.</summary>
    public void Swap(ServedModel next)
    {
        ArgumentNullException.ThrowIfNull(next);
        ServedModel? previous = Interlocked.Exchange(ref current, next);
        Swapped?.Invoke(previous, next);
        previous?.ReleaseReference();
    }

    public void Dispose()
    {
        Interlocked.Exchange(ref current, null)?.ReleaseReference();
    }
}

/// <summary>A request's hold on one served version; dispose it when the request is done.</summary>
public struct ModelLease : IDisposable
{
    private ServedModel? model;

    internal ModelLease(ServedModel model) => this.model = model;

    public readonly ServedModel Model => model ?? throw new ObjectDisposedException(nameof(ModelLease));

    public void Dispose()
    {
        ServedModel? held = model;
        model = null;
        held?.ReleaseReference();
    }
}
