using ContinualServe.Model.Store;
using Shouldly;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace ContinualServe.Model.Tests.Store;

/// <summary>
/// Weights files written byte by byte in TorchSharp's format, checked through <see cref="ModelVersion.LoadModule"/>:
/// every malformed file must fail with <see cref="InvalidDataException"/>, never with TorchSharp's ArgumentException or
/// a silent partial load.
/// </summary>
public sealed class WeightsFileCheckTests
{
    private static readonly (string Name, long[] Shape)[] SmallModelTensors =
    [
        ("layers.hidden0.weight", [8, 16]),
        ("layers.hidden0.bias", [8]),
        ("layers.head.weight", [3, 8]),
        ("layers.head.bias", [3]),
    ];

    // Checks the format that the other tests write: TorchSharp itself loads it.
    [Fact]
    public void HandWrittenFileLoads()
    {
        ModelVersion version = VerifiedVersion();
        WriteWeights(version.WeightsPath, SmallModelTensors);

        using nn.Module<Tensor, Tensor> module = version.LoadModule(CPU);

        module.state_dict()["layers.head.bias"].sum().item<float>().ShouldBe(0f);
    }

    // TorchSharp loads a file with one tensor twice and another missing, and leaves the missing one with its random
    // initial values.
    [Fact]
    public void DuplicateTensorIsRejected()
    {
        ModelVersion version = VerifiedVersion();
        WriteWeights(version.WeightsPath, [.. SmallModelTensors[..3], SmallModelTensors[2]]);

        string message = Should.Throw<InvalidDataException>(() => version.LoadModule(CPU)).Message;

        message.ShouldContain("'layers.head.bias'");
        message.ShouldContain("more than once ('layers.head.weight')");
    }

    [Fact]
    public void TrailingBytesAreRejected()
    {
        ModelVersion version = VerifiedVersion();
        WriteWeights(version.WeightsPath, SmallModelTensors);
        using (FileStream stream = File.Open(version.WeightsPath, FileMode.Append))
        {
            stream.Write([1, 2, 3, 4]);
        }

        Should.Throw<InvalidDataException>(() => version.LoadModule(CPU)).Message.ShouldContain("4 bytes after its last tensor");
    }

    // A header may not make the reader allocate in proportion to the file: the rank is bounded, not only by the size.
    [Fact]
    public void OversizedRankIsRejected()
    {
        ModelVersion version = VerifiedVersion();
        using (var writer = new BinaryWriter(File.Create(version.WeightsPath)))
        {
            WriteUnsigned(writer, 1);
            writer.Write("layers.head.bias");
            WriteUnsigned(writer, (long)ScalarType.Float32);
            WriteUnsigned(writer, 1000);
            writer.Write(new byte[4000]);
        }

        Should.Throw<InvalidDataException>(() => version.LoadModule(CPU)).Message.ShouldContain("rank 1000");
    }

    [Fact]
    public void EveryTruncationIsRejected()
    {
        ModelVersion version = VerifiedVersion();
        byte[] complete = File.ReadAllBytes(version.WeightsPath);

        for (int length = 0; length < complete.Length; length++)
        {
            File.WriteAllBytes(version.WeightsPath, complete[..length]);

            Should.Throw<InvalidDataException>(() => version.LoadModule(CPU), $"weights cut to {length} of {complete.Length} bytes");
        }
    }

    [Fact]
    public void RandomBytesAreRejected()
    {
        ModelVersion version = VerifiedVersion();
        var random = new Random(17);

        for (int file = 0; file < 200; file++)
        {
            byte[] content = new byte[random.Next(0, 2048)];
            random.NextBytes(content);
            File.WriteAllBytes(version.WeightsPath, content);

            Should.Throw<InvalidDataException>(() => version.LoadModule(CPU), $"random file {file} of {content.Length} bytes");
        }
    }

    private static ModelVersion VerifiedVersion()
    {
        ModelStore store = SmallModels.StoreWithVersions(1);
        store.TryLoad(1, out ModelVersion? version).ShouldBeTrue();
        return version!;
    }

    // Writes float32 tensors filled with zeros in the layout of TorchSharp 0.107's Module.save: the count, then per
    // tensor its name, data type code, rank and sizes, and its data.
    private static void WriteWeights(string path, (string Name, long[] Shape)[] tensors)
    {
        using var writer = new BinaryWriter(File.Create(path));
        WriteUnsigned(writer, tensors.Length);
        foreach ((string name, long[] shape) in tensors)
        {
            writer.Write(name);
            WriteUnsigned(writer, (long)ScalarType.Float32);
            WriteUnsigned(writer, shape.Length);
            foreach (long size in shape)
            {
                WriteUnsigned(writer, size);
            }

            writer.Write(new byte[shape.Aggregate(1L, (product, size) => product * size) * sizeof(float)]);
        }
    }

    // Unsigned LEB128: 7 bits a byte, low bits first, the high bit set on every byte but the last.
    private static void WriteUnsigned(BinaryWriter writer, long value)
    {
        while (value >= 0x80)
        {
            writer.Write((byte)(value & 0x7F | 0x80));
            value >>= 7;
        }

        writer.Write((byte)value);
    }
}
