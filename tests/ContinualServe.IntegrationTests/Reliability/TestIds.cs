using System.Globalization;

namespace ContinualServe.IntegrationTests.Reliability;

internal static class TestIds
{
    /// <summary>The id that ExampleProducer gives the training example at <paramref name="index"/>.</summary>
    public static string Train(int index) => "train-" + index.ToString("D5", CultureInfo.InvariantCulture);
}
