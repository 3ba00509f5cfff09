using System.Globalization;
using System.Text;

namespace ContinualServe.Server.Tests.Inference;

/// <summary>Builds Open Inference Protocol v2 request bodies for tests.</summary>
internal static class InferenceRequests
{
    public static string Body(int batch, int features, string datatype = "FP32", string? shape = null, string? data = null)
    {
        shape ??= $"[{batch},{features}]";
        data ??= "[" + string.Join(",", Enumerable.Range(0, batch * features).Select(index => (index % 7).ToString(CultureInfo.InvariantCulture))) + "]";
        return $"{{\"id\":\"r1\",\"inputs\":[{{\"name\":\"input\",\"shape\":{shape},\"datatype\":\"{datatype}\",\"data\":{data}}}]}}";
    }

    public static StringContent Json(string body) => new(body, Encoding.UTF8, "application/json");
}
