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
    /// <exception cref="InvalidDataException">The weights file no longer fits the spec's model; the message names the tensor.</exception>
    /// <exception cref="IOException">The weights file cannot be read.</exception>
    public nn.Module<Tensor, Tensor> LoadModule(Device device)
    {
        nn.Module<Tensor, Tensor> module = ModelFactory.Create(Spec);
        try
        {
            // The store checked the file when it loaded this version, but the file may have been replaced since, and
            // TorchSharp rejects a mismatch without naming the tensor.
            StateDictFile.Verify(WeightsPath, TensorLayout.StateOf(module), Spec.DescribeModel());
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
