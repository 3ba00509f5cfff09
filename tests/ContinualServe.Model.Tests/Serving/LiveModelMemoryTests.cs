using System.Runtime.InteropServices;
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

    [Fact]
    public void TrimReturnsFreedPages()
    {
        using var heap = FragmentedHeap.Create();
        GlibcMalloc.Trim().ShouldBeTrue("malloc_trim released nothing");
        heap.ReturnedBytes().ShouldBeGreaterThan(FragmentedHeap.ExpectedReturnBytes, "resident bytes returned by the trim");
    }

    [Fact]
    public void SwapTrimsFreedPages()
    {
        var store = new ModelStore(SmallModels.TemporaryDirectory());
        using (torch.nn.Module<torch.Tensor, torch.Tensor> module = ModelFactory.Create(SmallModels.Spec))
        {
            store.Save(SmallModels.Spec, module, new ModelManifest());
        }

        store.TryLoad(1, out ModelVersion? version).ShouldBeTrue();
        using var live = new LiveModel();
        live.Swap(ServedModel.Load(version!, torch.CPU));

        // Nothing in this process trims on its own, so the freed blocks stay resident until the swap's disposal does.
        using var heap = FragmentedHeap.Create();
        live.Swap(ServedModel.Load(version!, torch.CPU));
        var waiting = System.Diagnostics.Stopwatch.StartNew();
        while (heap.ReturnedBytes() <= FragmentedHeap.ExpectedReturnBytes && waiting.Elapsed < TimeSpan.FromSeconds(15))
        {
            Thread.Sleep(50);
        }

        heap.ReturnedBytes().ShouldBeGreaterThan(FragmentedHeap.ExpectedReturnBytes, "resident bytes returned after the swap");
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

/// <summary>
/// A heap with about 97 MiB of freed blocks that malloc keeps resident: 1,600 blocks of 64 KiB, each written to, of
/// which every 32nd stays allocated so that the free space between them cannot shrink the heap's top.
/// </summary>
internal sealed unsafe class FragmentedHeap : IDisposable
{
    /// <summary>Half of the freed bytes, a bound that leaves room for other allocations between the readings.</summary>
    public const long ExpectedReturnBytes = 48L * 1024 * 1024;

    private const int BlockCount = 1600;
    private const int BlockBytes = 64 * 1024;
    private const int PinnedEvery = 32;

    private readonly List<nint> pinnedBlocks = [];
    private readonly long residentAfterFree;

    private FragmentedHeap()
    {
        var blocks = new nint[BlockCount];
        for (int index = 0; index < BlockCount; index++)
        {
            void* block = NativeMemory.Alloc(BlockBytes);
            new Span<byte>(block, BlockBytes).Fill(1);
            blocks[index] = (nint)block;
        }

        for (int index = 0; index < BlockCount; index++)
        {
            if (index % PinnedEvery == 0)
            {
                pinnedBlocks.Add(blocks[index]);
            }
            else
            {
                NativeMemory.Free((void*)blocks[index]);
            }
        }

        residentAfterFree = GlibcMalloc.ResidentBytes();
    }

    public static FragmentedHeap Create() => new();

    public long ReturnedBytes() => residentAfterFree - GlibcMalloc.ResidentBytes();

    public void Dispose()
    {
        foreach (nint block in pinnedBlocks)
        {
            NativeMemory.Free((void*)block);
        }

        pinnedBlocks.Clear();
    }
}
