using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;

namespace ContinualServe.Learner.Holdout;

/// <summary>
/// Two keys read little-endian from one SHA-256 of an example id's UTF-8 bytes. <see cref="RoutingKey"/> (bytes 0
/// to 7) decides whether <see cref="HoldoutRouter"/> sends the example to the holdout set. <see cref="SampleKey"/>
/// (bytes 8 to 15) orders the bottom-k sample of <see cref="Evaluation.HoldoutEvaluator"/>. The keys come from
/// different bytes, so the sample within the holdout does not depend on the routing.
/// </summary>
public readonly record struct ExampleIdHash(ulong RoutingKey, ulong SampleKey)
{
    /// <summary>
    /// Hashes <paramref name="exampleId"/>. Learner checkpoints store the examples that these keys chose, so the
    /// bytes read must not change.
    /// </summary>
    public static ExampleIdHash Of(string exampleId)
    {
        ArgumentNullException.ThrowIfNull(exampleId);
        Span<byte> digest = stackalloc byte[SHA256.HashSizeInBytes];
        SHA256.HashData(Encoding.UTF8.GetBytes(exampleId), digest);
        return new ExampleIdHash(
            BinaryPrimitives.ReadUInt64LittleEndian(digest),
            BinaryPrimitives.ReadUInt64LittleEndian(digest[8..]));
    }
}
