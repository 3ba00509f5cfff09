using System.Text.Json;
using ContinualServe.Model.Store;
using Shouldly;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace ContinualServe.Model.Tests.Store;

/// <summary>
/// Versions whose weights match the manifest's SHA-256 but do not fit the model that their spec.json describes. The
/// store must skip them like a version with a wrong hash, so that servers and the learner take the previous version.
/// </summary>
public sealed class MisfitVersionTests
{
    [Fact]
    public void WiderHiddenLayerIsCorrupt()
    {
        ModelStore written = SmallModels.StoreWithVersions(1);
        SaveMisfit(written, SmallModels.Spec with { HiddenSizes = [12] }, SmallModels.Spec);
        var logger = new RecordingStoreLogger();
        var store = new ModelStore(written.RootDirectory, logger: logger);

        store.TryLoad(2, out _).ShouldBeFalse();
        store.TryLoadLatest().ShouldNotBeNull().Number.ShouldBe(1);
        store.TryLoad(2, out _).ShouldBeFalse();

        logger.Errors.ShouldBe([101], "a misfit version is logged once, like one with a wrong hash");
        store.WeightsHashed.ShouldBe(2, "the corrupt-version memo keeps later loads from reading version 2 again");
        string message = logger.ErrorExceptions.Single().ShouldBeOfType<InvalidDataException>().Message;
        message.ShouldContain("'layers.hidden0.weight'");
        message.ShouldContain("[12, 16]");
        message.ShouldContain("expected [8, 16]");
    }

    [Fact]
    public void RepairedSpecLoadsAgain()
    {
        ModelStore store = SmallModels.StoreWithVersions(1);
        ModelSpec actual = SmallModels.Spec with { HiddenSizes = [12] };
        SaveMisfit(store, actual, SmallModels.Spec);
        store.TryLoad(2, out _).ShouldBeFalse();

        string spec = Path.Combine(store.VersionDirectory(2), ModelStore.SpecFileName);
        File.WriteAllText(spec, actual.ToJson());
        File.SetLastWriteTimeUtc(spec, DateTime.UtcNow.AddSeconds(2));

        store.TryLoad(2, out ModelVersion? repaired).ShouldBeTrue();
        using nn.Module<Tensor, Tensor> module = repaired!.LoadModule(CPU);
    }

    [Fact]
    public void OtherArchitectureWeightsAreCorrupt()
    {
        ModelStore store = SmallModels.StoreWithVersions(1);
        ModelSpec convolutional = SmallModels.Spec with { Architecture = ModelFactory.CnnArchitecture, InputShape = [1, 4, 4], HiddenSizes = [4, 4] };
        SaveMisfit(store, convolutional, SmallModels.Spec);
        var logger = new RecordingStoreLogger();
        var reader = new ModelStore(store.RootDirectory, logger: logger);

        reader.TryLoad(2, out _).ShouldBeFalse();

        string message = logger.ErrorExceptions.Single().ShouldBeOfType<InvalidDataException>().Message;
        message.ShouldContain("'features.conv0.weight'");
        message.ShouldContain("'layers.hidden0.weight'");
    }

    [Fact]
    public void DoublePrecisionWeightsAreCorrupt()
    {
        ModelStore store = SmallModels.StoreWithVersions(1);
        SaveMisfit(store, SmallModels.Spec, SmallModels.Spec, ScalarType.Float64);
        var logger = new RecordingStoreLogger();
        var reader = new ModelStore(store.RootDirectory, logger: logger);

        reader.TryLoad(2, out _).ShouldBeFalse();

        string message = logger.ErrorExceptions.Single().ShouldBeOfType<InvalidDataException>().Message;
        message.ShouldContain("Float64");
        message.ShouldContain("Float32");
    }

    // The manifest records the hash of the truncated file, as a writer that lost the end of its output would.
    [Fact]
    public void TruncatedWeightsWithMatchingHashAreCorrupt()
    {
        ModelStore store = SmallModels.StoreWithVersions(2);
        string weights = Path.Combine(store.VersionDirectory(2), ModelStore.WeightsFileName);
        byte[] content = File.ReadAllBytes(weights);
        File.WriteAllBytes(weights, content[..^4]);
        RewriteManifest(store, 2, manifest => manifest with
        {
            WeightsSha256 = ModelStore.ComputeSha256(weights),
            WeightsBytes = content.Length - 4,
        });
        var logger = new RecordingStoreLogger();
        var reader = new ModelStore(store.RootDirectory, logger: logger);

        reader.TryLoadLatest().ShouldNotBeNull().Number.ShouldBe(1);

        string message = logger.ErrorExceptions.Single().ShouldBeOfType<InvalidDataException>().Message;
        message.ShouldContain("truncated");
    }

    [Fact]
    public void UnknownArchitectureIsCorrupt()
    {
        ModelStore store = SmallModels.StoreWithVersions(2);
        File.WriteAllText(
            Path.Combine(store.VersionDirectory(2), ModelStore.SpecFileName),
            (SmallModels.Spec with { Architecture = "transformer" }).ToJson());
        var logger = new RecordingStoreLogger();
        var reader = new ModelStore(store.RootDirectory, logger: logger);

        reader.TryLoadLatest().ShouldNotBeNull().Number.ShouldBe(1);

        string message = logger.ErrorExceptions.Single().ShouldBeOfType<InvalidDataException>().Message;
        message.ShouldContain("'transformer'");
    }

    // The cnn architecture needs a square image, which spec validation alone does not check.
    [Fact]
    public void ConvolutionalSpecWithFlatInputIsCorrupt()
    {
        ModelStore store = SmallModels.StoreWithVersions(2);
        File.WriteAllText(
            Path.Combine(store.VersionDirectory(2), ModelStore.SpecFileName),
            (SmallModels.Spec with { Architecture = ModelFactory.CnnArchitecture, InputShape = [12] }).ToJson());
        var logger = new RecordingStoreLogger();
        var reader = new ModelStore(store.RootDirectory, logger: logger);

        reader.TryLoadLatest().ShouldNotBeNull().Number.ShouldBe(1);

        logger.ErrorExceptions.Single().ShouldBeOfType<InvalidDataException>().Message.ShouldContain("square image");
    }

    // A version that every load would reject is not written at all.
    [Fact]
    public void SaveRejectsMisfitModule()
    {
        ModelStore store = SmallModels.StoreWithVersions(1);
        torch.manual_seed(10);
        using nn.Module<Tensor, Tensor> wider = ModelFactory.Create(SmallModels.Spec with { HiddenSizes = [12] });

        ArgumentException exception = Should.Throw<ArgumentException>(() => store.Save(SmallModels.Spec, wider, new ModelManifest()));

        exception.Message.ShouldContain("'layers.hidden0.weight' has shape [12, 16], expected [8, 16]");
        store.ListVersionNumbers().ShouldBe([1L]);
        Directory.EnumerateFileSystemEntries(store.RootDirectory, ".tmp-*").ShouldBeEmpty();
    }

    // Weights replaced after the store verified them: the serving path gets the same clear error, not TorchSharp's
    // ArgumentException, which names no tensor.
    [Fact]
    public void LoadModuleNamesMisfitTensor()
    {
        ModelStore store = SmallModels.StoreWithVersions(1);
        store.TryLoad(1, out ModelVersion? verified).ShouldBeTrue();
        torch.manual_seed(11);
        using (nn.Module<Tensor, Tensor> wider = ModelFactory.Create(SmallModels.Spec with { HiddenSizes = [12] }))
        {
            wider.save(verified!.WeightsPath);
        }

        InvalidDataException exception = Should.Throw<InvalidDataException>(() => verified.LoadModule(CPU));

        exception.Message.ShouldContain("'layers.hidden0.weight'");
        exception.Message.ShouldContain("[12, 16]");
    }

    [Fact]
    public void StreamLoadNamesMisfitTensor()
    {
        ModelStore store = SmallModels.StoreWithVersions(1);
        store.TryLoad(1, out ModelVersion? verified).ShouldBeTrue();
        torch.manual_seed(11);
        using var weights = new MemoryStream();
        using (nn.Module<Tensor, Tensor> wider = ModelFactory.Create(SmallModels.Spec with { HiddenSizes = [12] }))
        using (var writer = new BinaryWriter(weights, System.Text.Encoding.UTF8, leaveOpen: true))
        {
            wider.save(writer);
        }

        InvalidDataException exception = Should.Throw<InvalidDataException>(() => verified!.LoadModule(CPU, weights));

        exception.Message.ShouldContain(verified!.WeightsPath);
        exception.Message.ShouldContain("'layers.hidden0.weight'");
        exception.Message.ShouldContain("[12, 16]");
    }

    // An I/O error, which may pass, keeps its type, so callers do not take it for corrupt data.
    [Fact]
    public void LoadModuleKeepsIoErrors()
    {
        ModelStore store = SmallModels.StoreWithVersions(1);
        store.TryLoad(1, out ModelVersion? verified).ShouldBeTrue();
        File.Delete(verified!.WeightsPath);

        Should.Throw<FileNotFoundException>(() => verified.LoadModule(CPU));
    }

    // Saves the next version with claimed as its spec, then replaces its weights with those of a module built from
    // actual and records their hash in the manifest, as a writer with a bug would.
    private static void SaveMisfit(ModelStore store, ModelSpec actual, ModelSpec claimed, ScalarType dataType = ScalarType.Float32)
    {
        torch.manual_seed(9);
        ModelVersion saved;
        using (nn.Module<Tensor, Tensor> fitting = ModelFactory.Create(claimed))
        {
            saved = store.Save(claimed, fitting, new ModelManifest());
        }

        using (nn.Module<Tensor, Tensor> module = ModelFactory.Create(actual))
        {
            module.to(dataType);
            module.save(saved.WeightsPath);
        }

        RewriteManifest(store, saved.Number, manifest => manifest with
        {
            WeightsSha256 = ModelStore.ComputeSha256(saved.WeightsPath),
            WeightsBytes = new FileInfo(saved.WeightsPath).Length,
        });
    }

    private static void RewriteManifest(ModelStore store, long number, Func<ModelManifest, ModelManifest> change)
    {
        string path = Path.Combine(store.VersionDirectory(number), ModelStore.ManifestFileName);
        ModelManifest manifest = JsonSerializer.Deserialize<ModelManifest>(File.ReadAllBytes(path), ModelManifest.JsonOptions)!;
        File.WriteAllBytes(path, JsonSerializer.SerializeToUtf8Bytes(change(manifest), ModelManifest.JsonOptions));
    }
}
