using ContinualServe.Model;
using ContinualServe.Model.Store;
using TorchSharp;
using static TorchSharp.torch;

namespace ContinualServe.IntegrationTests.Distribution;

/// <summary>Versions of the default model for a learner's store, and copies of them in a replica's store.</summary>
internal static class ReplicaStores
{
    /// <summary>Saves an untrained version of the default model, initialized from <paramref name="seed"/>.</summary>
    public static void SaveVersion(ModelStore store, int seed)
    {
        torch.manual_seed(seed);
        using nn.Module<Tensor, Tensor> module = ModelFactory.Create(new ModelSpec());
        store.Save(new ModelSpec(), module, new ModelManifest());
    }

    /// <summary>Copies the files of a version directory, as a replica that downloaded it before would hold them.</summary>
    public static void CopyVersion(string source, string destination)
    {
        Directory.CreateDirectory(destination);
        foreach (string file in Directory.EnumerateFiles(source))
        {
            File.Copy(file, Path.Combine(destination, Path.GetFileName(file)));
        }
    }
}
