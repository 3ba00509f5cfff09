using ContinualServe.Benchmarks;
using ContinualServe.Model.Serving;
using ContinualServe.Model.Store;
using Shouldly;
using TorchSharp;
using Xunit;

namespace ContinualServe.Model.Tests.Serving;

// Alone in its collection, so that no test running beside it allocates or frees native memory between the readings.
[CollectionDefinition(nameof(LiveModelMemoryTests), DisableParallelization = true)]
[Collection(nameof(LiveModelMemoryTests))]
public sealed class LiveModelMemoryTests
{
    [Fact]
    public void NativeMemoryStaysFlatOverSwaps()
    {
        // A version that is never freed adds 1.6 to 2.2 GiB over the last 300 swaps (measured), a healthy run about
        // 3 MiB. The test reads the bytes glibc's malloc has allocated and not had back, not resident memory, because
        // the allocator keeps freed blocks and RSS then climbs by a different amount on each machine.
        var spec = SmallModels.Spec with { InputShape = [784], HiddenSizes = [1024, 1024] };
        var store = new ModelStore(SmallModels.TemporaryDirectory());
        for (int version = 1; version <= 2; version++)
        {
            torch.manual_seed(version);
            using torch.nn.Module<torch.Tensor, torch.Tensor> module = ModelFactory.Create(spec);
            store.Save(spec, module, new ModelManifest());
        }

        store.TryLoad(1, out ModelVersion? first).ShouldBeTrue();
        store.TryLoad(2, out ModelVersion? second).ShouldBeTrue();
        using var live = new LiveModel();
        var features = new float[784];
        var probabilities = new float[spec.ClassCount];
        long afterWarmUp = 0;
        for (int swap = 1; swap <= 400; swap++)
        {
            live.Swap(ServedModel.Load(swap % 2 == 0 ? first! : second!, torch.CPU));
            live.TryAcquire(out ModelLease lease).ShouldBeTrue();
            using (lease)
            {
                lease.Model.Predict(features, 1, probabilities);
            }

            if (swap == 100)
            {
                afterWarmUp = NativeBytesInUse();
            }
        }

        // A swapped-out version is freed on a thread-pool thread, which a loaded machine may run late, so the reading
        // is repeated for a while. A version that is never freed keeps the growth above the bound the whole time.
        const long bound = 256L * 1024 * 1024;
        long growth = NativeBytesInUse() - afterWarmUp;
        var waiting = System.Diagnostics.Stopwatch.StartNew();
        while (growth >= bound && waiting.Elapsed < TimeSpan.FromSeconds(15))
        {
            Thread.Sleep(100);
            growth = NativeBytesInUse() - afterWarmUp;
        }

        growth.ShouldBeLessThan(bound, "native memory growth from swap 100 to swap 400, in bytes");
    }

    private static long NativeBytesInUse()
    {
        // Collecting first runs the finalizers of anything still waiting to free its tensors.
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        long bytes = GlibcMalloc.BytesInUse();
        bytes.ShouldBeGreaterThan(0, "glibc's mallinfo2 is needed to measure native memory");
        return bytes;
    }
}
