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

    /// <summary>
    /// Builds the module on <paramref name="device"/> and loads into it the weights file that <paramref name="weights"/>
    /// contains from its start, read from <see cref="WeightsPath"/> on another thread, so that the caller's thread does no
    /// file I/O. Leaves the stream open.
    /// </summary>
    /// <exception cref="InvalidDataException">The weights no longer fit the spec's model; the message names the tensor.</exception>
    public nn.Module<Tensor, Tensor> LoadModule(Device device, Stream weights)
    {
        ArgumentNullException.ThrowIfNull(weights);
        nn.Module<Tensor, Tensor> module = ModelFactory.Create(Spec);
        try
        {
            weights.Position = 0;
            StateDictFile.Verify(weights, WeightsPath, TensorLayout.StateOf(module), Spec.DescribeModel());
            weights.Position = 0;
            using var reader = new BinaryReader(weights, System.Text.Encoding.UTF8, leaveOpen: true);
            module.load(reader);
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
