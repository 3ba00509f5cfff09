using ContinualServe.Learner.Data;
using ContinualServe.Learner.Replay;
using ContinualServe.Model;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn.functional;

namespace ContinualServe.Learner.Training;

/// <summary>
/// Trains a private copy of the model on new examples mixed with replay: loss = CE(new)
/// + alpha * MSE(logits on replayed examples, stored logits) + beta * CE(replayed labels).
/// Every new example is then offered to the reservoir buffer with the logits it got in this step.
/// Owned by one thread: TorchSharp's dispose scopes and no_grad are per thread.
/// </summary>
public sealed class ContinualTrainer : IDisposable
{
    private readonly TrainerOptions options;
    private readonly optim.Optimizer optimizer;

    public ContinualTrainer(ModelSpec spec, nn.Module<Tensor, Tensor> initialWeights, Device device, TrainerOptions options)
    {
        ArgumentNullException.ThrowIfNull(spec);
        ArgumentNullException.ThrowIfNull(initialWeights);
        ArgumentNullException.ThrowIfNull(options);
        this.options = options;
        Spec = spec;
        Device = device;
        Module = ModelFactory.Clone(spec, initialWeights, device);
        Module.train();
        optimizer = optim.Adam(Module.parameters(), options.LearningRate);
        ReplayBuffer = new ReservoirReplayBuffer(options.UsesReplay ? options.ReplayCapacity : 0, options.Seed);
    }

    public ModelSpec Spec { get; }

    public Device Device { get; }

    /// <summary>The module being trained; never the one that serves requests.</summary>
    public nn.Module<Tensor, Tensor> Module { get; }

    public ReservoirReplayBuffer ReplayBuffer { get; }

    public long StepCount { get; private set; }

    public long SkippedStepCount { get; private set; }

    /// <summary>Runs one gradient step on <paramref name="batch"/> and offers its examples to the replay buffer.</summary>
    public StepLosses Step(IReadOnlyList<LabeledExample> batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        if (batch.Count == 0)
        {
            throw new ArgumentException("A training step needs at least one example.", nameof(batch));
        }

        using var scope = torch.NewDisposeScope();
        Tensor input = TensorBatches.Features(batch, 0, batch.Count, Device);
        Tensor labels = TensorBatches.Labels(batch, 0, batch.Count, Device);
        Tensor logits = Module.forward(input);
        Tensor newLoss = cross_entropy(logits, labels);
        Tensor total = newLoss;

        double logitLoss = 0;
        double labelLoss = 0;
        if (options.UsesReplay && ReplayBuffer.Count > 0)
        {
            if (options.EffectiveLogitWeight > 0)
            {
                Tensor replayLogitLoss = ReplayLogitLoss();
                logitLoss = replayLogitLoss.item<float>();
                total = total + (replayLogitLoss * options.EffectiveLogitWeight);
            }

            if (options.EffectiveLabelWeight > 0)
            {
                Tensor replayLabelLoss = ReplayLabelLoss();
                labelLoss = replayLabelLoss.item<float>();
                total = total + (replayLabelLoss * options.EffectiveLabelWeight);
            }
        }

        double totalValue = total.item<float>();
        var losses = new StepLosses(newLoss.item<float>(), logitLoss, labelLoss, totalValue, Skipped: !double.IsFinite(totalValue));
        if (losses.Skipped)
        {
            SkippedStepCount++;
            return losses;
        }

        optimizer.zero_grad();
        total.backward();
        if (options.GradientClipNorm > 0)
        {
            _ = nn.utils.clip_grad_norm_(Module.parameters(), options.GradientClipNorm);
        }

        optimizer.step();
        StepCount++;
        OfferToReplay(batch, logits);
        return losses;
    }

    /// <summary>Writes the optimizer state (Adam moments and step counts) to <paramref name="path"/> for a learner checkpoint.</summary>
    public void SaveOptimizerState(string path) => StatefulOptimizer.save_state_dict(path);

    /// <summary>Replaces the optimizer state with one written by <see cref="SaveOptimizerState"/>.</summary>
    public void LoadOptimizerState(string path) => StatefulOptimizer.load_state_dict(path);

    private TorchSharp.Modules.OptimizerHelper StatefulOptimizer => optimizer as TorchSharp.Modules.OptimizerHelper
        ?? throw new NotSupportedException($"{optimizer.GetType().Name} cannot save or load its state.");

    public void Dispose()
    {
        optimizer.Dispose();
        Module.Dispose();
    }

    private Tensor ReplayLogitLoss()
    {
        IReadOnlyList<ReplayExample> sample = ReplayBuffer.Sample(options.ReplayBatchSize);
        Tensor input = ReplayFeatures(sample);
        Tensor stored = ReplayLogits(sample);
        return mse_loss(Module.forward(input), stored);
    }

    private Tensor ReplayLabelLoss()
    {
        IReadOnlyList<ReplayExample> sample = ReplayBuffer.Sample(options.ReplayBatchSize);
        Tensor input = ReplayFeatures(sample);
        Tensor labels = TensorBatches.ToDevice(torch.tensor(sample.Select(example => (long)example.Label).ToArray()), Device);
        return cross_entropy(Module.forward(input), labels);
    }

    private void OfferToReplay(IReadOnlyList<LabeledExample> batch, Tensor logits)
    {
        if (!options.UsesReplay)
        {
            return;
        }

        float[] values = logits.detach().cpu().data<float>().ToArray();
        int classCount = Spec.ClassCount;
        for (int index = 0; index < batch.Count; index++)
        {
            LabeledExample example = batch[index];
            float[] stored = values.AsSpan(index * classCount, classCount).ToArray();
            _ = ReplayBuffer.Offer(new ReplayExample(example.Id, example.Task, example.Label, example.Features, stored));
        }
    }

    private Tensor ReplayFeatures(IReadOnlyList<ReplayExample> sample)
    {
        int featureCount = Spec.FeatureCount;
        var buffer = new float[sample.Count * featureCount];
        for (int index = 0; index < sample.Count; index++)
        {
            sample[index].Features.CopyTo(buffer, index * featureCount);
        }

        return TensorBatches.ToDevice(torch.tensor(buffer, [sample.Count, featureCount]), Device);
    }

    private Tensor ReplayLogits(IReadOnlyList<ReplayExample> sample)
    {
        int classCount = Spec.ClassCount;
        var buffer = new float[sample.Count * classCount];
        for (int index = 0; index < sample.Count; index++)
        {
            sample[index].Logits.CopyTo(buffer, index * classCount);
        }

        return TensorBatches.ToDevice(torch.tensor(buffer, [sample.Count, classCount]), Device);
    }
}
