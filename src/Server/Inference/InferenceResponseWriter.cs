using System.Buffers;
using System.Buffers.Binary;
using System.Globalization;
using System.IO.Pipelines;
using System.Text.Json;

namespace ContinualServe.Server.Inference;

/// <summary>Writes a successful inference response: JSON, or a JSON header followed by binary tensor data.</summary>
internal static class InferenceResponseWriter
{
    private const string JsonContentType = "application/json";

    public static async Task WriteResponseAsync(HttpContext context, string modelName, long version, InferenceInput input, float[] probabilities, int classCount)
    {
        context.Response.StatusCode = StatusCodes.Status200OK;
        PipeWriter pipe = context.Response.BodyWriter;
        if (input.BinaryOutput)
        {
            byte[] header = BuildHeader(modelName, version, input, probabilities, classCount, binary: true);
            context.Response.ContentType = "application/octet-stream";
            context.Response.Headers[InferenceApi.BinaryHeaderName] = header.Length.ToString(CultureInfo.InvariantCulture);
            pipe.Write(header);
            WriteBinaryOutputs(pipe, input.BatchSize, probabilities, classCount);
        }
        else
        {
            context.Response.ContentType = JsonContentType;
            using var writer = new Utf8JsonWriter(pipe);
            WriteHeader(writer, modelName, version, input, probabilities, classCount, binary: false);
        }

        await pipe.FlushAsync(context.RequestAborted).ConfigureAwait(false);
    }

    private static byte[] BuildHeader(string modelName, long version, InferenceInput input, float[] probabilities, int classCount, bool binary)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            WriteHeader(writer, modelName, version, input, probabilities, classCount, binary);
        }

        return buffer.WrittenSpan.ToArray();
    }

    private static void WriteHeader(Utf8JsonWriter writer, string modelName, long version, InferenceInput input, float[] probabilities, int classCount, bool binary)
    {
        writer.WriteStartObject();
        writer.WriteString("model_name", modelName);
        writer.WriteString("model_version", version.ToString(CultureInfo.InvariantCulture));
        if (input.RequestId is not null)
        {
            writer.WriteString("id", input.RequestId);
        }

        writer.WriteStartArray("outputs");
        WriteProbabilities(writer, input.BatchSize, probabilities, classCount, binary);
        WriteLabels(writer, input.BatchSize, probabilities, classCount, binary);
        writer.WriteEndArray();
        writer.WriteEndObject();
    }

    private static void WriteBinaryOutputs(PipeWriter pipe, int batchSize, float[] probabilities, int classCount)
    {
        Span<byte> probabilityBytes = pipe.GetSpan(batchSize * classCount * sizeof(float));
        for (int index = 0; index < batchSize * classCount; index++)
        {
            BinaryPrimitives.WriteSingleLittleEndian(probabilityBytes[(index * sizeof(float))..], probabilities[index]);
        }

        pipe.Advance(batchSize * classCount * sizeof(float));
        Span<byte> labelBytes = pipe.GetSpan(batchSize * sizeof(long));
        for (int row = 0; row < batchSize; row++)
        {
            BinaryPrimitives.WriteInt64LittleEndian(labelBytes[(row * sizeof(long))..], ArgMax(probabilities.AsSpan(row * classCount, classCount)));
        }

        pipe.Advance(batchSize * sizeof(long));
    }

    private static void WriteProbabilities(Utf8JsonWriter writer, int batchSize, float[] probabilities, int classCount, bool binary)
    {
        writer.WriteStartObject();
        writer.WriteString("name", "probabilities");
        writer.WriteString("datatype", "FP32");
        writer.WriteStartArray("shape");
        writer.WriteNumberValue(batchSize);
        writer.WriteNumberValue(classCount);
        writer.WriteEndArray();
        if (binary)
        {
            WriteBinarySize(writer, batchSize * classCount * sizeof(float));
        }
        else
        {
            writer.WriteStartArray("data");
            foreach (float probability in probabilities.AsSpan(0, batchSize * classCount))
            {
                writer.WriteNumberValue(probability);
            }

            writer.WriteEndArray();
        }

        writer.WriteEndObject();
    }

    private static void WriteBinarySize(Utf8JsonWriter writer, int bytes)
    {
        writer.WriteStartObject("parameters");
        writer.WriteNumber("binary_data_size", bytes);
        writer.WriteEndObject();
    }

    private static int ArgMax(ReadOnlySpan<float> values)
    {
        int best = 0;
        for (int index = 1; index < values.Length; index++)
        {
            if (values[index] > values[best])
            {
                best = index;
            }
        }

        return best;
    }

    private static void WriteLabels(Utf8JsonWriter writer, int batchSize, float[] probabilities, int classCount, bool binary)
    {
        writer.WriteStartObject();
        writer.WriteString("name", "label");
        writer.WriteString("datatype", "INT64");
        writer.WriteStartArray("shape");
        writer.WriteNumberValue(batchSize);
        writer.WriteEndArray();
        if (binary)
        {
            WriteBinarySize(writer, batchSize * sizeof(long));
        }
        else
        {
            writer.WriteStartArray("data");
            for (int row = 0; row < batchSize; row++)
            {
                writer.WriteNumberValue(ArgMax(probabilities.AsSpan(row * classCount, classCount)));
            }

            writer.WriteEndArray();
        }

        writer.WriteEndObject();
    }
}
