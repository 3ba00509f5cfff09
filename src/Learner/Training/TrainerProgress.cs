namespace ContinualServe.Learner.Training;

/// <summary>
/// Trainer state kept in a learner checkpoint besides the weights: <paramref name="LastTask"/> is the task of the
/// last trained batch (null before the first), <paramref name="SeenClasses"/> the labels trained on, and
/// <paramref name="TeacherClasses"/> the labels the LwF teacher distills (empty without a teacher).
/// </summary>
public sealed record TrainerProgress(int? LastTask, IReadOnlyList<int> SeenClasses, IReadOnlyList<int> TeacherClasses);
