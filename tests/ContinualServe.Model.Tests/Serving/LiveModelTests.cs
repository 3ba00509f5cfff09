using ContinualServe.Model.Serving;
using ContinualServe.Model.Store;
using Shouldly;
using TorchSharp;
using Xunit;

namespace ContinualServe.Model.Tests.Serving;

public sealed class LiveModelTests
{
    [Fact]
    public void EmptyLiveModelGrantsNoLease()
    {
        using var live = new LiveModel();

        live.TryAcquire(out _).ShouldBeFalse();
        live.IsReady.ShouldBeFalse();
    }

    [Fact]
    public void LeasedVersionSurvivesSwap()
    {
        ModelStore store = SmallModels.StoreWithVersions(2);
        using var live = new LiveModel();
        ServedModel first = Load(store, 1);
        live.Swap(first);

        live.TryAcquire(out ModelLease lease).ShouldBeTrue();
        live.Swap(Load(store, 2));

        first.IsDisposed.ShouldBeFalse();
        lease.Model.Version.ShouldBe(1);
        var probabilities = new float[3];
        lease.Model.Predict(new float[16], 1, probabilities);
        probabilities.Sum().ShouldBe(1f, 1e-5f);

        lease.Dispose();
        first.IsDisposed.ShouldBeTrue();
        live.CurrentVersion.ShouldBe(2);
    }

    [Fact]
    public void SwapWithoutLeasesDisposesPrevious()
    {
        ModelStore store = SmallModels.StoreWithVersions(2);
        using var live = new LiveModel();
        ServedModel first = Load(store, 1);
        live.Swap(first);

        live.Swap(Load(store, 2));

        first.IsDisposed.ShouldBeTrue();
    }

    [Fact]
    public void ConcurrentLeasesDuringSwapsNeverFail()
    {
        ModelStore store = SmallModels.StoreWithVersions(30);
        using var live = new LiveModel();
        var served = new List<ServedModel> { Load(store, 1) };
        live.Swap(served[0]);
        long failures = 0;
        long predictions = 0;
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(30));

        Thread[] clients = Enumerable.Range(0, 8).Select(_ => new Thread(() =>
        {
            var probabilities = new float[3];
            while (!stop.IsCancellationRequested)
            {
                if (!live.TryAcquire(out ModelLease lease))
                {
                    Interlocked.Increment(ref failures);
                    continue;
                }

                using (lease)
                {
                    lease.Model.Predict(new float[16], 1, probabilities);
                }

                Interlocked.Increment(ref predictions);
            }
        })).ToArray();
        foreach (Thread client in clients)
        {
            client.Start();
        }

        for (long version = 2; version <= 30; version++)
        {
            // Each swap must happen while clients are predicting, so wait for a few more predictions first.
            long target = Interlocked.Read(ref predictions) + 8;
            SpinWait.SpinUntil(() => Interlocked.Read(ref predictions) >= target || stop.IsCancellationRequested);
            ServedModel next = Load(store, version);
            served.Add(next);
            live.Swap(next);
        }

        stop.Cancel();
        foreach (Thread client in clients)
        {
            client.Join();
        }

        failures.ShouldBe(0);
        predictions.ShouldBeGreaterThan(29 * 8);
        served.Take(served.Count - 1).ShouldAllBe(model => model.IsDisposed);
        served[^1].IsDisposed.ShouldBeFalse();
    }

    private static ServedModel Load(ModelStore store, long version)
    {
        store.TryLoad(version, out ModelVersion? loaded).ShouldBeTrue();
        return ServedModel.Load(loaded!, torch.CPU);
    }
}
