using ContinualServe.Model.Store;
using TorchSharp;
using static TorchSharp.torch;

namespace ContinualServe.Model.Tests;

/// <summary>Small specs and stores for tests that need real modules but not real training.</summary>
internal static class SmallModels
{
    public static ModelSpec Spec { get; } = new()
    {
        Name = "test-model",
        InputShape = [16],
        Labels = ["a", "b", "c"],
        HiddenSizes = [8],
        InputScale = 1f,
    };

    public static string TemporaryDirectory()
    {
        string path = Path.Combine(Path.GetTempPath(), "continualserve-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(path);
        return path;
    }

    /// <summary>Saves <paramref name="count"/> versions with different random weights (seeded by version).</summary>
    public static ModelStore StoreWithVersions(int count, int retained = 100)
    {
        var store = new ModelStore(TemporaryDirectory(), retained);
        for (int version = 1; version <= count; version++)
        {
            torch.manual_seed(version);
            using nn.Module<Tensor, Tensor> module = ModelFactory.Create(Spec);
            store.Save(Spec, module, new ModelManifest());
        }

        return store;
    }
}
