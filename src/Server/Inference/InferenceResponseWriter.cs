using System.Buffers;
using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using System.IO.Pipelines;
using System.Text.Json;

namespace ContinualServe.Server.Inference;

/// <summary>Writes a successful inference response: JSON, or a JSON header followed by binary tensor data.</summary>
internal static class InferenceResponseWriter
{
    /// <summary>
    /// Writes the outputs that <paramref name="input"/> requests, in request order. If any of them is binary, the
    /// body is the JSON header followed by the binary outputs, and Inference-Header-Content-Length gives the header
    /// length. Otherwise the body is plain JSON.
    /// </summary>
    public static async Task WriteResponseAsync(HttpContext context, string modelName, long version, InferenceInput input, float[] probabilities, int classCount)
    {
        context.Response.StatusCode = StatusCodes.Status200OK;
        PipeWriter pipe = context.Response.BodyWriter;
        if (HasBinaryOutput(input.Outputs))
        {
            byte[] header = BuildHeader(modelName, version, input, probabilities, classCount);
            context.Response.ContentType = InferenceApi.BinaryContentType;
            context.Response.Headers[InferenceApi.BinaryHeaderName] = header.Length.ToString(CultureInfo.InvariantCulture);
            pipe.Write(header);
            WriteBinaryOutputs(pipe, input, probabilities, classCount);
        }
        else
        {
            context.Response.ContentType = InferenceApi.JsonContentType;
            using var writer = new Utf8JsonWriter(pipe);
            WriteHeader(writer, modelName, version, input, probabilities, classCount);
        }

        await pipe.FlushAsync(context.RequestAborted).ConfigureAwait(false);
    }

    private static bool HasBinaryOutput(IReadOnlyList<RequestedOutput> outputs)
    {
        foreach (RequestedOutput output in outputs)
        {
            if (output.Binary)
            {
                return true;
            }
        }

        return false;
    }

    private static byte[] BuildHeader(string modelName, long version, InferenceInput input, float[] probabilities, int classCount)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            WriteHeader(writer, modelName, version, input, probabilities, classCount);
        }

        return buffer.WrittenSpan.ToArray();
    }

    private static void WriteHeader(Utf8JsonWriter writer, string modelName, long version, InferenceInput input, float[] probabilities, int classCount)
    {
        writer.WriteStartObject();
        writer.WriteString("model_name", modelName);
        writer.WriteString("model_version", version.ToString(CultureInfo.InvariantCulture));
        if (input.RequestId is not null)
        {
            writer.WriteString("id", input.RequestId);
        }

        writer.WriteStartArray("outputs");
        foreach (RequestedOutput output in input.Outputs)
        {
            switch (output.Name)
            {
                case ModelTensors.Probabilities:
                    WriteProbabilities(writer, input.BatchSize, probabilities, classCount, output.Binary);
                    break;
                case ModelTensors.Label:
                    WriteLabels(writer, input.BatchSize, probabilities, classCount, output.Binary);
                    break;
                default:
                    throw new UnreachableException($"The request reader let unknown output '{output.Name}' through.");
            }
        }

        writer.WriteEndArray();
        writer.WriteEndObject();
    }

    // The request reader admits only the model's output names, so every output is one of the two below.
    private static void WriteBinaryOutputs(PipeWriter pipe, InferenceInput input, float[] probabilities, int classCount)
    {
        foreach (RequestedOutput output in input.Outputs)
        {
            if (!output.Binary)
            {
                continue;
            }

            if (output.Name == ModelTensors.Label)
            {
                WriteBinaryLabels(pipe, input.BatchSize, probabilities, classCount);
            }
            else
            {
                WriteBinaryProbabilities(pipe, input.BatchSize, probabilities, classCount);
            }
        }
    }

    private static void WriteBinaryProbabilities(PipeWriter pipe, int batchSize, float[] probabilities, int classCount)
    {
        Span<byte> probabilityBytes = pipe.GetSpan(batchSize * classCount * sizeof(float));
        for (int index = 0; index < batchSize * classCount; index++)
        {
            BinaryPrimitives.WriteSingleLittleEndian(probabilityBytes[(index * sizeof(float))..], probabilities[index]);
        }

        pipe.Advance(batchSize * classCount * sizeof(float));
    }

    private static void WriteBinaryLabels(PipeWriter pipe, int batchSize, float[] probabilities, int classCount)
    {
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
        writer.WriteString("name", ModelTensors.Probabilities);
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
        writer.WriteString("name", ModelTensors.Label);
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
