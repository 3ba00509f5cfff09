using ContinualServe.Model.Store;

namespace ContinualServe.Learner.Tests.Promotion;

/// <summary>
/// A golden set of one test image per class with an accuracy floor of 1.0. A candidate trained on a few hundred
/// examples of one task cannot name all ten classes, so the gate rejects every candidate.
/// </summary>
internal static class RejectingGoldenSet
{
    /// <summary>Saves the golden set into <paramref name="storeDirectory"/> and sets the floor in <paramref name="options"/>.</summary>
    public static void Apply(LearnerOptions options, string storeDirectory)
    {
        new GoldenSet
        {
            Examples = TestData.TestExamples
                .DistinctBy(example => example.Label)
                .Select(example => new GoldenExample(example.Label, example.Features))
                .ToArray(),
            UploadedAt = DateTimeOffset.UtcNow,
        }.Save(storeDirectory);
        options.Promotion.MinGoldenAccuracy = 1.0;
    }
}
