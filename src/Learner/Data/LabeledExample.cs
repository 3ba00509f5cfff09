namespace ContinualServe.Learner.Data;

/// <summary>One labeled training example as carried by a Kafka record; features are raw values (pixels 0–255).</summary>
public sealed record LabeledExample(string Id, int Task, int Label, float[] Features);
