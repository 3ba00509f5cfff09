using ContinualServe.Learner.Experiments;
using ContinualServe.Learner.Training;

namespace ContinualServe.Server.Demo;

/// <summary>
/// Resolves the demo's <c>--strategy</c>: the names of <c>continualserve experiment</c>, so that a strategy in the
/// results table can be watched streaming, and the learner's <see cref="ReplayStrategy"/> names, which earlier
/// demo runs used.
/// </summary>
public static class DemoStrategies
{
    private static readonly Dictionary<string, string> SettingNames = new(StringComparer.OrdinalIgnoreCase)
    {
        [nameof(ReplayStrategy.Naive)] = "naive",
        [nameof(ReplayStrategy.ExperienceReplay)] = "er",
        [nameof(ReplayStrategy.Der)] = "der",
        [nameof(ReplayStrategy.DerPlusPlus)] = "derpp",
    };

    private static readonly string[] StreamingNames = ExperimentStrategy.KnownNames.Where(known => known != "joint").ToArray();

    /// <summary>Returns the experiment name that <paramref name="name"/> stands for, or null for an unknown name and for <c>joint</c>, which does not stream.</summary>
    public static string? Find(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        string experimentName = SettingNames.GetValueOrDefault(name, name.ToLowerInvariant());
        return StreamingNames.Contains(experimentName) ? experimentName : null;
    }

    public static string UnknownNameMessage(string name) =>
        $"Unknown demo strategy '{name}'; expected one of {string.Join(", ", StreamingNames)} (or {string.Join(", ", SettingNames.Keys)}).";

    /// <summary>Returns the trainer settings of strategy <paramref name="name"/> over <paramref name="baseline"/>.</summary>
    public static TrainerOptions Named(string name, TrainerOptions baseline)
    {
        string experimentName = Find(name) ?? throw new ArgumentException(UnknownNameMessage(name), nameof(name));
        return ExperimentStrategy.Named(experimentName, baseline).Trainer;
    }
}
