using ContinualServe.Learner.Checkpoints;
using Shouldly;
using Xunit;

namespace ContinualServe.Learner.Tests.Checkpoints;

/// <summary>The native-memory stream that carries checkpoint files between the learner thread and a thread-pool task.</summary>
public sealed class NativeBufferStreamTests : IDisposable
{
    private readonly TemporaryDirectory directory = new("continualserve-native-buffer-");

    public void Dispose() => directory.Dispose();

    // An initial capacity of 1 byte makes the writes grow the buffer many times.
    [Fact]
    public void WrittenFileReadsBackUnchanged()
    {
        byte[] contents = Enumerable.Range(0, 100_000).Select(index => (byte)(index * 7)).ToArray();
        string path = Path.Combine(directory.Path, "written.bin");
        using (var stream = new NativeBufferStream(initialCapacity: 1))
        {
            for (int start = 0; start < contents.Length; start += 999)
            {
                stream.Write(contents, start, Math.Min(999, contents.Length - start));
            }

            stream.Length.ShouldBe(contents.Length);
            stream.WriteFile(path);
        }

        File.ReadAllBytes(path).ShouldBe(contents);
        using NativeBufferStream read = NativeBufferStream.ReadFile(path);
        read.Position.ShouldBe(0);
        read.Length.ShouldBe(contents.Length);
        var copy = new byte[contents.Length + 10];
        int total = 0;
        int count;
        while ((count = read.Read(copy, total, copy.Length - total)) > 0)
        {
            total += count;
        }

        total.ShouldBe(contents.Length);
        copy[..total].ShouldBe(contents);
    }

    [Fact]
    public void WritePastEndFillsZeros()
    {
        using var stream = new NativeBufferStream(initialCapacity: 2);
        stream.Write([1, 2]);
        stream.Seek(3, SeekOrigin.Current);
        stream.Write([9]);

        stream.Length.ShouldBe(6);
        stream.Position = 0;
        var contents = new byte[6];
        stream.ReadExactly(contents);
        contents.ShouldBe(new byte[] { 1, 2, 0, 0, 0, 9 });
    }

    [Fact]
    public void EmptyFileReadsEmpty()
    {
        string path = Path.Combine(directory.Path, "empty.bin");
        File.WriteAllBytes(path, []);

        using NativeBufferStream read = NativeBufferStream.ReadFile(path);

        read.Length.ShouldBe(0);
        read.ReadByte().ShouldBe(-1);
    }

    [Fact]
    public void MissingFileKeepsIoError()
    {
        Should.Throw<FileNotFoundException>(() => NativeBufferStream.ReadFile(Path.Combine(directory.Path, "missing.bin")));
    }
}
