using System.Text;
using ContinualServe.Server.Inference;
using Shouldly;
using Xunit;

namespace ContinualServe.Server.Tests.Inference;

public sealed class InferenceRequestReaderTests
{
    private readonly InferenceRequestReader reader = new(featureCount: 4, maxBatchSize: 8);

    [Fact]
    public void FlatDataIsRead()
    {
        bool ok = reader.TryRead(Utf8(InferenceRequests.Body(2, 4)), out InferenceInput input, out InferenceError? error);

        ok.ShouldBeTrue();
        error.ShouldBeNull();
        input.BatchSize.ShouldBe(2);
        input.RequestId.ShouldBe("r1");
        input.Data.Take(8).ShouldBe([0f, 1f, 2f, 3f, 4f, 5f, 6f, 0f]);
    }

    [Fact]
    public void NestedDataIsRead()
    {
        string body = InferenceRequests.Body(2, 4, data: "[[1,2,3,4],[5,6,7,8]]");

        reader.TryRead(Utf8(body), out InferenceInput input, out _).ShouldBeTrue();

        input.Data.Take(8).ShouldBe([1f, 2f, 3f, 4f, 5f, 6f, 7f, 8f]);
    }

    [Fact]
    public void RaggedRowsAreRejected()
    {
        // Rows of 3 and 5 values add up to 2 rows of 4, so only the row lengths show the shifted features.
        string body = InferenceRequests.Body(2, 4, data: "[[1,2,3],[4,5,6,7,8]]");

        bool ok = reader.TryRead(Utf8(body), out _, out InferenceError? error);

        ok.ShouldBeFalse();
        error!.Field.ShouldBe("inputs[0].data[0]");
        error.Error.ShouldBe("Input data row 0 has 3 values, but the input shape [N, 4] needs 4 in each row.");
        error.Expected.ShouldBe("an array of 4 numbers");
    }

    [Theory]
    [InlineData("[[1,2,3,4],[5,6,7]]", "inputs[0].data[1]")]
    [InlineData("[[1,2,3,4],5,6,7,8]", "inputs[0].data[1]")]
    [InlineData("[1,2,3,4,[5,6,7,8]]", "inputs[0].data[4]")]
    [InlineData("[[1,2,3,4],[5,6,[7],8]]", "inputs[0].data[1][2]")]
    [InlineData("[[[1,2,3,4]],[[5,6,7,8]]]", "inputs[0].data[0][0]")]
    public void NestingOtherThanRowsIsNamed(string data, string field)
    {
        bool ok = reader.TryRead(Utf8(InferenceRequests.Body(2, 4, data: data)), out _, out InferenceError? error);

        ok.ShouldBeFalse();
        error!.Field.ShouldBe(field);
    }

    [Theory]
    [InlineData("1e39")]
    [InlineData("-3.5e38")]
    public void ValueBeyondFp32RangeIsNamed(string item)
    {
        bool ok = reader.TryRead(Utf8(InferenceRequests.Body(1, 4, data: $"[0,1,{item},3]")), out _, out InferenceError? error);

        ok.ShouldBeFalse();
        error!.Field.ShouldBe("inputs[0].data");
        error.Error.ShouldBe("Input data item 2 is outside the FP32 range, whose largest magnitude is 3.4028235E+38.");
    }

    [Theory]
    [InlineData("[1,1,2,2]")]
    [InlineData("[1,2,2]")]
    [InlineData("[4]")]
    [InlineData("[1,4,1]")]
    [InlineData("[1,1,4]")]
    [InlineData("[2,2]")]
    public void ShapeOtherThanRowsIsRejected(string shape)
    {
        bool ok = reader.TryRead(Utf8(InferenceRequests.Body(1, 4, shape: shape)), out _, out InferenceError? error);

        ok.ShouldBeFalse();
        error!.Field.ShouldBe("inputs[0].shape");
        error.Expected.ShouldBe("[N, 4] with 1 <= N <= 8");
        error.Error.ShouldContain("[-1, 4]");
    }

    [Theory]
    [InlineData("[1,4]", 8, "[2, 4]")]
    [InlineData("[3,4]", 8, "[2, 4]")]
    [InlineData("[2,4]", 4, "[1, 4]")]
    public void BatchSizeMustMatchData(string shape, int values, string impliedShape)
    {
        string data = "[" + string.Join(",", Enumerable.Range(0, values)) + "]";

        bool ok = reader.TryRead(Utf8(InferenceRequests.Body(1, 4, shape: shape, data: data)), out _, out InferenceError? error);

        ok.ShouldBeFalse();
        error!.Field.ShouldBe("inputs[0].shape");
        error.Expected.ShouldBe(impliedShape);
    }

    // Rows times features of 65,536 by 40,000 exceed int's range. The product once wrapped to a negative limit, which
    // rejected a request of two rows as soon as its data outgrew the reader's first buffer of one row.
    [Fact]
    public void WideModelLimitDoesNotOverflow()
    {
        var wide = new InferenceRequestReader(featureCount: 40_000, maxBatchSize: 65_536);

        string data = "[" + string.Join(",", Enumerable.Repeat("0.5", 80_000)) + "]";
        string body = $"{{\"inputs\":[{{\"name\":\"input\",\"datatype\":\"FP32\",\"data\":{data},\"shape\":[2,40000]}}]}}";

        bool ok = wide.TryRead(Utf8(body), out InferenceInput input, out InferenceError? error);

        ok.ShouldBeTrue(error?.Error);
        input.BatchSize.ShouldBe(2);
    }

    [Fact]
    public void SingleFeatureRowsNeedRankTwo()
    {
        var singleFeature = new InferenceRequestReader(featureCount: 1, maxBatchSize: 8);

        bool flat = singleFeature.TryRead(Utf8(InferenceRequests.Body(3, 1, shape: "[3]", data: "[1,2,3]")), out _, out _);
        bool rows = singleFeature.TryRead(Utf8(InferenceRequests.Body(3, 1, shape: "[3,1]", data: "[1,2,3]")), out InferenceInput input, out _);

        flat.ShouldBeFalse();
        rows.ShouldBeTrue();
        input.BatchSize.ShouldBe(3);
    }

    [Theory]
    [InlineData("{\"inputs\":[", "body")]
    [InlineData("[1,2,3]", "body")]
    [InlineData("{\"id\":\"x\"}", "inputs")]
    [InlineData("{\"inputs\":[]}", "inputs")]
    [InlineData("{\"inputs\":{}}", "inputs")]
    public void MalformedBodiesNameTheField(string body, string field)
    {
        reader.TryRead(Utf8(body), out _, out InferenceError? error).ShouldBeFalse();

        error!.Field.ShouldBe(field);
    }

    [Theory]
    [InlineData("INT32", null, null, "inputs[0].datatype")]
    [InlineData("FP32", "[1,5]", null, "inputs[0].shape")]
    [InlineData("FP32", "[0,4]", "[]", "inputs[0].shape[0]")]
    [InlineData("FP32", "[9,4]", null, "inputs[0].shape[0]")]
    [InlineData("FP32", "[1,4]", "[1,2,3]", "inputs[0].data")]
    [InlineData("FP32", "[1,4]", "[1,2,3,4,5]", "inputs[0].data")]
    [InlineData("FP32", "[1,4]", "[1,2,\"x\",4]", "inputs[0].data")]
    [InlineData("FP32", "[1,4]", "[1,2,1e39,4]", "inputs[0].data")]
    [InlineData("FP32", "[-1,4]", null, "inputs[0].shape")]
    [InlineData("FP32", "\"1x4\"", null, "inputs[0].shape")]
    public void InvalidTensorsNameTheField(string datatype, string? shape, string? data, string field)
    {
        string body = InferenceRequests.Body(1, 4, datatype, shape, data ?? "[1,2,3,4]");

        reader.TryRead(Utf8(body), out _, out InferenceError? error).ShouldBeFalse();

        error!.Field.ShouldBe(field);
        error.Expected.ShouldNotBeNullOrEmpty();
    }

    [Theory]
    [InlineData("7")]
    [InlineData("true")]
    [InlineData("[\"r1\"]")]
    [InlineData("{\"value\":\"r1\"}")]
    public void NonStringIdIsRejected(string id)
    {
        string body = InferenceRequests.Body(1, 4).Replace("\"id\":\"r1\"", "\"id\":" + id, StringComparison.Ordinal);

        reader.TryRead(Utf8(body), out _, out InferenceError? error).ShouldBeFalse();

        error!.Field.ShouldBe("id");
        error.Expected.ShouldBe("a string");
    }

    [Fact]
    public void NullIdIsRead()
    {
        string body = InferenceRequests.Body(1, 4).Replace("\"id\":\"r1\"", "\"id\":null", StringComparison.Ordinal);

        reader.TryRead(Utf8(body), out InferenceInput input, out _).ShouldBeTrue();

        input.RequestId.ShouldBeNull();
    }

    [Theory]
    [InlineData("{\"type\":\"FP32\"}")]
    [InlineData("[\"FP32\"]")]
    public void StructuredDatatypeNamesDatatype(string datatype)
    {
        string body = "{\"inputs\":[{\"datatype\":" + datatype + ",\"name\":\"input\",\"shape\":[1,4],\"data\":[1,2,3,4]}]}";

        reader.TryRead(Utf8(body), out _, out InferenceError? error).ShouldBeFalse();

        error!.Field.ShouldBe("inputs[0].datatype");
    }

    [Fact]
    public void SecondInputIsRejected()
    {
        string tensor = "{\"name\":\"input\",\"shape\":[1,4],\"datatype\":\"FP32\",\"data\":[1,2,3,4]}";

        reader.TryRead(Utf8($"{{\"inputs\":[{tensor},{tensor}]}}"), out _, out InferenceError? error).ShouldBeFalse();

        error!.Field.ShouldBe("inputs");
    }

    [Theory]
    [InlineData("\"features\"")]
    [InlineData("\"Input\"")]
    [InlineData("null")]
    [InlineData("7")]
    public void WrongInputNameIsRejected(string name)
    {
        string body = InferenceRequests.Body(1, 4).Replace("\"name\":\"input\"", "\"name\":" + name, StringComparison.Ordinal);

        reader.TryRead(Utf8(body), out _, out InferenceError? error).ShouldBeFalse();

        error!.Field.ShouldBe("inputs[0].name");
        error.Expected.ShouldBe("input");
    }

    [Theory]
    [InlineData("", false)]
    [InlineData(",\"parameters\":{\"binary_data_output\":false}", false)]
    [InlineData(",\"parameters\":{\"binary_data_output\":true}", true)]
    [InlineData(",\"outputs\":[],\"parameters\":{\"binary_data_output\":true}", true)]
    public void NoOutputsMeansEveryOutput(string extra, bool binary)
    {
        string body = InferenceRequests.Body(1, 4)[..^1] + extra + "}";

        reader.TryRead(Utf8(body), out InferenceInput input, out _).ShouldBeTrue();

        input.Outputs.ShouldBe([new RequestedOutput("probabilities", binary), new RequestedOutput("label", binary)]);
    }

    [Fact]
    public void OutputFlagOverridesRequestFlag()
    {
        string outputs = "[{\"name\":\"label\",\"parameters\":{\"binary_data\":false}},{\"name\":\"probabilities\"}]";
        string body = InferenceRequests.Body(1, 4)[..^1] + ",\"outputs\":" + outputs + ",\"parameters\":{\"binary_data_output\":true}}";

        reader.TryRead(Utf8(body), out InferenceInput input, out _).ShouldBeTrue();

        input.Outputs.ShouldBe([new RequestedOutput("label", false), new RequestedOutput("probabilities", true)]);
    }

    [Theory]
    [InlineData("{\"binary_data_output\":1}", "parameters.binary_data_output")]
    [InlineData("[]", "parameters")]
    public void InvalidParametersNameTheField(string parameters, string field)
    {
        string body = InferenceRequests.Body(1, 4)[..^1] + ",\"parameters\":" + parameters + "}";

        reader.TryRead(Utf8(body), out _, out InferenceError? error).ShouldBeFalse();

        error!.Field.ShouldBe(field);
    }

    [Theory]
    [InlineData("{\"binary_data_size\":\"3136\"}", "inputs[0].parameters.binary_data_size")]
    [InlineData("{\"binary_data_size\":3136.5}", "inputs[0].parameters.binary_data_size")]
    [InlineData("\"x\"", "inputs[0].parameters")]
    public void InvalidInputParametersNameTheField(string parameters, string field)
    {
        string body = "{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[1,4],\"parameters\":" + parameters + "}]}";

        reader.TryRead(Utf8(body), out _, out InferenceError? error).ShouldBeFalse();

        error!.Field.ShouldBe(field);
    }

    [Fact]
    public void RepeatedInputsIsRejected()
    {
        string inputs = "\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[1,4],\"data\":[1,2,3,4]}]";

        reader.TryRead(Utf8("{" + inputs + "," + inputs + "}"), out _, out InferenceError? error).ShouldBeFalse();

        error!.Field.ShouldBe("inputs");
        error.Error.ShouldBe("The request body contains the property inputs twice.");
    }

    [Theory]
    [InlineData("")]
    [InlineData(" \r\n\t")]
    public void EmptyBodyIsRejectedAsEmpty(string body)
    {
        reader.TryRead(Utf8(body), out _, out InferenceError? error).ShouldBeFalse();

        error!.Field.ShouldBe("body");
        error.Error.ShouldBe("The request body is empty. Send a JSON object with an 'inputs' array.");
    }

    [Fact]
    public void EmptyHeaderBeforeBinaryIsNamed()
    {
        reader.TryRead(ReadOnlySpan<byte>.Empty, new byte[16], out _, out InferenceError? error).ShouldBeFalse();

        error!.Field.ShouldBe("body");
        error.Error.ShouldBe("The JSON header before the binary data is empty (Inference-Header-Content-Length is 0). Send a JSON object with an 'inputs' array first.");
    }

    // Names are compared after unescaping (\u0069 is "i") and with case, as the reader matches them.
    [Theory]
    [InlineData("{\"id\":\"a\",\"id\":\"b\",\"inputs\":[INPUT]}", "id")]
    [InlineData("{\"inputs\":[INPUT],\"\\u0069nputs\":[INPUT]}", "inputs")]
    [InlineData("{\"inputs\":[{\"name\":\"input\",\"name\":\"other\",\"datatype\":\"FP32\",\"shape\":[1,4],\"data\":[1,2,3,4]}]}", "inputs[0].name")]
    [InlineData("{\"inputs\":[INPUT],\"outputs\":[{\"name\":\"label\"},{\"name\":\"probabilities\",\"name\":\"label\"}]}", "outputs[1].name")]
    [InlineData("{\"inputs\":[INPUT],\"parameters\":{\"binary_data_output\":false,\"binary_data_output\":true}}", "parameters.binary_data_output")]
    [InlineData("{\"inputs\":[INPUT],\"extra\":{\"a\":1,\"a\":2}}", "extra.a")]
    [InlineData("{\"inputs\":[INPUT],\"extra\":[{\"a\":1},{\"b\":[{\"c\":1,\"c\":2}]}]}", "extra[1].b[0].c")]
    [InlineData("{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[1,4],\"data\":[1,2,3,4],\"data\":[1,2,3,4]}]}", "inputs[0].data")]
    [InlineData("{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[1,4],\"data\":[1,2,3,4],\"tags\":{\"x\":1,\"x\":1}}]}", "inputs[0].tags.x")]
    [InlineData("{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[1,4],\"parameters\":{\"binary_data_size\":16,\"binary_data_size\":16}}]}", "inputs[0].parameters.binary_data_size")]
    [InlineData("{\"inputs\":[INPUT],\"outputs\":[{\"name\":\"label\",\"parameters\":{\"binary_data\":true,\"binary_data\":false}}]}", "outputs[0].parameters.binary_data")]
    public void DuplicatePropertyIsNamed(string template, string field)
    {
        string body = template.Replace("INPUT", "{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[1,4],\"data\":[1,2,3,4]}", StringComparison.Ordinal);

        reader.TryRead(Utf8(body), out _, out InferenceError? error).ShouldBeFalse();

        error!.Field.ShouldBe(field);
        error.Error.ShouldBe($"The request body contains the property {field} twice.");
    }

    [Fact]
    public void SameNameInSiblingObjectsIsRead()
    {
        string body = "{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[1,4],\"data\":[1,2,3,4]}],"
            + "\"outputs\":[{\"name\":\"label\"},{\"name\":\"probabilities\"}],\"Inputs\":1}";

        bool ok = reader.TryRead(Utf8(body), out InferenceInput input, out InferenceError? error);

        error.ShouldBeNull();
        ok.ShouldBeTrue();
        input.BatchSize.ShouldBe(1);
    }

    [Fact]
    public void MissingBinaryDataNamesHeader()
    {
        string body = "{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[1,4],\"parameters\":{\"binary_data_size\":16}}]}";

        reader.TryRead(Utf8(body), out _, out InferenceError? error).ShouldBeFalse();

        error!.Error.ShouldContain("none follow the JSON header");
        error.Error.ShouldContain("Inference-Header-Content-Length");
    }

    [Fact]
    public void BinaryRowsOverBatchLimitNameTheSetting()
    {
        const int Rows = 9;
        int bytes = Rows * 4 * sizeof(float);
        string body = $"{{\"inputs\":[{{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[{Rows},4],\"parameters\":{{\"binary_data_size\":{bytes}}}}}]}}";

        reader.TryRead(Utf8(body), new byte[bytes], out _, out InferenceError? error).ShouldBeFalse();

        error!.Field.ShouldBe("inputs[0].shape[0]");
        error.Error.ShouldBe("Batch size 9 is out of range: the server accepts 1 to 8 rows (Server:MaxBatchSize).");
    }

    private static byte[] Utf8(string text) => Encoding.UTF8.GetBytes(text);
}
