using TorchSharp;
using static TorchSharp.torch;

namespace ContinualServe.Model.Store;

/// <summary>An immutable version in a <see cref="ModelStore"/>: spec, manifest and the path of its verified weights.</summary>
public sealed class ModelVersion
{
    internal ModelVersion(ModelSpec spec, ModelManifest manifest, string directory)
    {
        Spec = spec;
        Manifest = manifest;
        Directory = directory;
    }

    public ModelSpec Spec { get; }

    public ModelManifest Manifest { get; }

    public long Number => Manifest.Version;

    public string Directory { get; }

    public string WeightsPath => Path.Combine(Directory, ModelStore.WeightsFileName);

    /// <summary>Builds the module on <paramref name="device"/> and loads the weights into it.</summary>
    public nn.Module<Tensor, Tensor> LoadModule(Device device)
    {
        nn.Module<Tensor, Tensor> module = ModelFactory.Create(Spec);
        try
        {
            module.load(WeightsPath);
            module.to(device);
            return module;
        }
        catch
        {
            module.Dispose();
            throw;
        }
    }
}
