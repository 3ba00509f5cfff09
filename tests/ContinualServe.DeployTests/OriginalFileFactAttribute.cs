using Xunit;

namespace ContinualServe.DeployTests;

/// <summary>A fact that is skipped, with a message, while the original file it compares against does not exist yet.</summary>
[AttributeUsage(AttributeTargets.Method)]
public sealed class OriginalFileFactAttribute : FactAttribute
{
    public OriginalFileFactAttribute(string originalPath)
    {
        OriginalPath = originalPath;
        if (!File.Exists(Path.Combine(ChartFiles.RepositoryRoot, originalPath)))
        {
            Skip = $"{originalPath} does not exist yet, so the chart's copy cannot be compared with it.";
        }
    }

    public string OriginalPath { get; }
}
