namespace ContinualServe.Learner.Replay;

/// <summary>An example kept for replay, with the logits the model gave it when it was stored (for DER distillation).</summary>
public sealed record ReplayExample(string Id, int Task, int Label, float[] Features, float[] Logits);
