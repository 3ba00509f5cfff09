using ContinualServe.Learner.Checkpoints;
using ContinualServe.Learner.Data;
using ContinualServe.Learner.Replay;
using ContinualServe.Model;
using ContinualServe.Model.Architectures;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn.functional;

namespace ContinualServe.Learner.Training;

/// <summary>
/// Trains a private copy of the model on new examples mixed with replay and distillation, one strategy per
/// configuration: loss = CE(new) + alpha * MSE(logits on replayed examples, stored logits)
/// + beta * CE(replayed labels) + lambda * LwF distillation toward the teacher. Each incoming batch gets
/// <see cref="TrainerOptions.StepsPerBatch"/> gradient steps; its examples are then offered to the replay buffer
/// with the logits of the last step. The <see cref="ReplayStrategy.Analytic"/> strategy takes no gradient steps: it adds
/// each batch to an <see cref="AnalyticHead"/> and fits the head when <see cref="Module"/> is read.
/// Owned by one thread: TorchSharp's dispose scopes and no_grad are per thread.
/// </summary>
public sealed class ContinualTrainer : IDisposable
{
    // Fitted logits lie near 0 and 1 (the one-hot targets), so this is far below any of them.
    private const float UnseenClassLogit = -1000f;

    private readonly TrainerOptions options;
    private readonly HashSet<int> seenClasses = [];
    private readonly Random augmentationRandom;
    private readonly TrainerScalars scalars;
    private readonly nn.Module<Tensor, Tensor> module;
    private readonly AnalyticHead? analyticHead;
    private readonly (Tensor Weight, Tensor Bias)[] hiddenLayers = [];
    private readonly (Tensor Weight, Tensor Bias) headLayer;
    private readonly Scalar? inputScale;

    // The head's input width, the feature count of analytic sums that fit it; null for a model without an mlp head.
    private readonly int? headInputWidth;
    // When false, the analytic head is the fit of the sums divided by AnalyticTemperature.
    private bool headStale;
    private AdamOptimizer optimizer;
    private nn.Module<Tensor, Tensor>? teacher;
    private long[] teacherClasses = [];
    private int? lastTask;

    public ContinualTrainer(ModelSpec spec, nn.Module<Tensor, Tensor> initialWeights, Device device, TrainerOptions options)
    {
        ArgumentNullException.ThrowIfNull(spec);
        ArgumentNullException.ThrowIfNull(initialWeights);
        ArgumentNullException.ThrowIfNull(options);
        this.options = options;
        Spec = spec;
        Device = device;
        module = ModelFactory.Clone(spec, initialWeights, device);
        module.train();
        optimizer = CreateOptimizer();
        if (options.IsAnalytic)
        {
            (hiddenLayers, headLayer) = AnalyticLayers(spec, module, options);
            inputScale = ((double)spec.InputScale).ToScalar();
            analyticHead = new AnalyticHead((int)hiddenLayers[^1].Weight.shape[0], spec.ClassCount, device);
        }

        headInputWidth = analyticHead?.FeatureCount ?? HeadInputWidth(module);
        ReplayBuffer = ReplayBuffers.Create(options.BufferKind, options.UsesReplay ? options.ReplayCapacity : 0, options.Seed);
        augmentationRandom = new Random(options.Seed + 1);
        scalars = new TrainerScalars(options);
    }

    public ModelSpec Spec { get; }

    public Device Device { get; }

    /// <summary>
    /// Temperature that divides the analytic head's fitted outputs, set by <see cref="CalibrateAnalyticHead"/>. It is 1
    /// until then, and with the other strategies.
    /// </summary>
    public double AnalyticTemperature { get; private set; } = 1.0;

    /// <summary>
    /// The module being trained; never the one that serves requests. With the analytic strategy, reading it first
    /// fits the head to every batch added since the last read.
    /// </summary>
    public nn.Module<Tensor, Tensor> Module
    {
        get
        {
            FitAnalyticHeadIfStale();
            return module;
        }
    }

    public IReplayBuffer ReplayBuffer { get; }

    /// <summary>Gradient steps taken so far.</summary>
    public long StepCount { get; private set; }

    public long SkippedStepCount { get; private set; }

    /// <summary>True once LwF has a teacher, which happens at the first task change when distillation is on.</summary>
    public bool HasTeacher => teacher is not null;

    /// <summary>
    /// What a checkpoint needs besides weights, optimizer and replay buffer to continue distillation: the task of
    /// the last batch, the classes trained on, and the classes the teacher has learned.
    /// </summary>
    public TrainerProgress Progress => new(lastTask, seenClasses.Order().ToArray(), teacherClasses.Select(label => (int)label).ToArray());

    /// <summary>Writes the LwF teacher's weights to <paramref name="path"/>; returns false, writing nothing, when there is no teacher.</summary>
    public bool SaveTeacher(string path)
    {
        if (teacher is null)
        {
            return false;
        }

        teacher.save(path);
        return true;
    }

    /// <summary>
    /// Restores <paramref name="progress"/> and, when <paramref name="teacherPath"/> is given, the teacher written
    /// by <see cref="SaveTeacher"/>, so that a restarted learner distills as the stopped one did.
    /// </summary>
    public void Restore(TrainerProgress progress, string? teacherPath)
    {
        if (teacherPath is null)
        {
            Restore(progress, teacher: null);
            return;
        }

        using FileStream stream = File.OpenRead(teacherPath);
        Restore(progress, stream);
    }

    /// <summary>
    /// Restores <paramref name="progress"/>, and the teacher whose weights file <paramref name="teacher"/> contains from
    /// its start when it is given, as the path overload does. Leaves the stream open.
    /// </summary>
    public void Restore(TrainerProgress progress, Stream? teacher)
    {
        ArgumentNullException.ThrowIfNull(progress);
        lastTask = progress.LastTask;
        seenClasses.Clear();
        seenClasses.UnionWith(progress.SeenClasses);
        this.teacher?.Dispose();
        this.teacher = null;
        teacherClasses = [];
        if (teacher is not null)
        {
            nn.Module<Tensor, Tensor> restored = ModelFactory.Create(Spec);
            teacher.Position = 0;
            using (var reader = new BinaryReader(teacher, System.Text.Encoding.UTF8, leaveOpen: true))
            {
                restored.load(reader);
            }

            this.teacher = ModelFactory.Clone(Spec, restored, Device);
            restored.Dispose();
            this.teacher.eval();
            teacherClasses = progress.TeacherClasses.Select(label => (long)label).ToArray();
        }
    }

    /// <summary>
    /// Trains on <paramref name="batch"/> and offers its examples to the replay buffer. Returns the losses of the
    /// last gradient step, or of the step whose loss was not finite (then no update was made and training on the
    /// batch stops).
    /// </summary>
    public StepLosses Step(IReadOnlyList<LabeledExample> batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        if (batch.Count == 0)
        {
            throw new ArgumentException("A training step needs at least one example.", nameof(batch));
        }

        if (analyticHead is not null)
        {
            return AnalyticStep(batch, analyticHead);
        }

        FreezeTeacherOnTaskChange(batch[0].Task);
        using var scope = torch.NewDisposeScope();
        Tensor input = TensorBatches.Features(batch, 0, batch.Count, Device);
        Tensor labels = TensorBatches.Labels(batch, 0, batch.Count, Device);
        Tensor? teacherProbabilities = TeacherProbabilities(input);
        Tensor? presentClassMask = options.AsymmetricNewLoss ? PresentClassMask(labels) : null;

        StepLosses losses = default;
        Tensor? lastLogits = null;
        for (int iteration = 0; iteration < options.StepsPerBatch; iteration++)
        {
            using var stepScope = torch.NewDisposeScope();
            Tensor logits = module.forward(input);
            losses = GradientStep(logits, labels, presentClassMask, teacherProbabilities);
            if (losses.Skipped)
            {
                SkippedStepCount++;
                return losses;
            }

            StepCount++;
            lastLogits?.Dispose();
            lastLogits = logits.detach().MoveToOuterDisposeScope();
        }

        foreach (LabeledExample example in batch)
        {
            _ = seenClasses.Add(example.Label);
        }

        OfferToReplay(batch, lastLogits!);
        return losses;
    }

    /// <summary>
    /// Replaces the weights being trained with <paramref name="weights"/> (for example the live version after a
    /// candidate was rejected) and restarts the optimizer, whose moments belong to the discarded weights.
    /// The replay buffer and the LwF teacher are kept. The analytic strategy also replaces its running sums with the
    /// ones in <paramref name="analyticSumsPath"/>, a file written by <see cref="SaveOptimizerState"/> together with
    /// <paramref name="weights"/>, and so drops the batches the discarded weights were fitted to. A gradient strategy
    /// given a file of analytic sums (the weights came from the analytic strategy) fits its head to them again, without
    /// the temperature, as <see cref="LoadOptimizerState"/> does, and ignores any other file or a missing one.
    /// </summary>
    /// <exception cref="ArgumentException">The strategy is analytic and <paramref name="analyticSumsPath"/> is null.</exception>
    /// <exception cref="InvalidDataException">The strategy is analytic and the file contains no intact sums of its size. The trainer is then unchanged.</exception>
    public void ResetWeights(nn.Module<Tensor, Tensor> weights, string? analyticSumsPath = null)
    {
        ArgumentNullException.ThrowIfNull(weights);
        if (analyticHead is not null && analyticSumsPath is null)
        {
            throw new ArgumentException(
                "The analytic strategy keeps no copy of its running sums in memory and needs the file of the sums behind the weights.",
                nameof(analyticSumsPath));
        }

        // The sums are read first, so that a file that cannot be read leaves the trainer as it was.
        ResetWeights(weights, ReadAnalyticSums(analyticSumsPath));
    }

    /// <summary>
    /// Resets the weights as the path overload does, with sums that <see cref="ReadAnalyticSums"/> read from the file of
    /// the sums behind <paramref name="weights"/>. Null sums leave a gradient strategy's head as <paramref name="weights"/> has it.
    /// </summary>
    /// <exception cref="ArgumentException">The strategy is analytic and <paramref name="sums"/> is null.</exception>
    internal void ResetWeights(nn.Module<Tensor, Tensor> weights, AnalyticSums? sums)
    {
        ArgumentNullException.ThrowIfNull(weights);
        if (analyticHead is not null && sums is null)
        {
            throw new ArgumentException(
                "The analytic strategy keeps no copy of its running sums in memory and needs the sums behind the weights.", nameof(sums));
        }

        analyticHead?.Load(sums!);
        ModelFactory.CopyWeights(weights, module);
        optimizer.Dispose();
        optimizer = CreateOptimizer();
        if (analyticHead is not null)
        {
            // The classes of the dropped batches leave the progress too, so the next checkpoint lists only the classes in the sums.
            seenClasses.Clear();
            seenClasses.UnionWith(analyticHead.TrainedClasses());
            RefitLoadedAnalyticHead();
        }
        else if (sums is not null)
        {
            RefitHeadFromSums(sums);
        }
    }

    /// <summary>
    /// Reads the file of analytic sums at <paramref name="path"/> for <see cref="ResetWeights(nn.Module{Tensor, Tensor}, AnalyticSums?)"/>
    /// and <see cref="LoadOptimizerState(OptimizerStateFile)"/>. Touches no tensor, so it runs on any thread, such as a
    /// thread-pool task while the learner thread polls the consumer. Returns null when <paramref name="path"/> is null, and
    /// for a gradient strategy when the file is missing or contains no analytic sums.
    /// </summary>
    /// <exception cref="InvalidDataException">The file contains no intact sums of this model's size (for a gradient strategy: starts like a sums file but does not fit).</exception>
    internal AnalyticSums? ReadAnalyticSums(string? path)
    {
        if (path is null)
        {
            return null;
        }

        if (analyticHead is null && (headInputWidth is null || !AnalyticHead.IsHeadFile(path)))
        {
            return null;
        }

        return AnalyticHead.Read(path, headInputWidth!.Value, Spec.ClassCount);
    }

    /// <summary>
    /// Fits the analytic head to every batch added so far and sets the temperature of its outputs to the one whose
    /// softmax best matches the labels of <paramref name="examples"/> (held-out examples, never trained on). The
    /// fitted outputs lie near the one-hot targets, so their plain softmax is nearly flat. The temperature changes
    /// no prediction. Examples of classes not yet trained are skipped. Returns the temperature, which stays as it was
    /// when no example is left.
    /// </summary>
    /// <param name="examples">Held-out examples whose outputs the temperature is fitted to.</param>
    /// <param name="batching">How the forward pass over <paramref name="examples"/> is split; the default when null.</param>
    /// <exception cref="InvalidOperationException">The strategy is not <see cref="ReplayStrategy.Analytic"/>.</exception>
    public double CalibrateAnalyticHead(IReadOnlyList<LabeledExample> examples, ForwardBatching? batching = null)
    {
        ArgumentNullException.ThrowIfNull(examples);
        if (analyticHead is null)
        {
            throw new InvalidOperationException($"Only the {nameof(ReplayStrategy.Analytic)} strategy has a head to calibrate, but this trainer uses {options.Strategy}.");
        }

        // A class without examples in the sums has an output near UnseenClassLogit, and one of its examples would
        // outweigh all the others and flatten every softmax. The sums decide, because a restored checkpoint's progress
        // may list a class whose examples a revert dropped from the sums.
        var trained = new HashSet<int>(analyticHead.TrainedClasses());
        examples = examples.Where(example => trained.Contains(example.Label)).ToList();
        if (examples.Count == 0)
        {
            return AnalyticTemperature;
        }

        // The head is the fit divided by the temperature, so the outputs are multiplied back to the regression's own.
        FitAnalyticHeadIfStale();
        using var scope = torch.NewDisposeScope();
        using Scalar temperature = AnalyticTemperature.ToScalar();
        Tensor outputs = TensorBatches.Outputs(module, examples, Device, batching).mul(temperature);
        Tensor labels = TensorBatches.Labels(examples, 0, examples.Count, Device);
        double scale = TemperatureScaling.FitScale(outputs, labels);
        ScaleHead(scale * AnalyticTemperature);
        AnalyticTemperature = 1.0 / scale;
        return AnalyticTemperature;
    }

    public void Dispose()
    {
        optimizer.Dispose();
        scalars.Dispose();
        teacher?.Dispose();
        analyticHead?.Dispose();
        inputScale?.Dispose();
        module.Dispose();
    }

    private StepLosses GradientStep(Tensor logits, Tensor labels, Tensor? presentClassMask, Tensor? teacherProbabilities)
    {
        Tensor newLogits = presentClassMask is null ? logits : logits.masked_fill(presentClassMask.logical_not(), scalars.MaskedLogit);
        Tensor newLoss = cross_entropy(newLogits, labels);
        Tensor total = newLoss;

        double logitLoss = 0;
        double labelLoss = 0;
        double distillationLoss = 0;
        if (options.UsesReplay && ReplayBuffer.Count > 0)
        {
            if (options.EffectiveLogitWeight > 0)
            {
                Tensor replayLogitLoss = ReplayLogitLoss();
                logitLoss = replayLogitLoss.item<float>();
                total = total.add(replayLogitLoss, scalars.LogitWeight);
            }

            if (options.EffectiveLabelWeight > 0)
            {
                Tensor replayLabelLoss = ReplayLabelLoss();
                labelLoss = replayLabelLoss.item<float>();
                total = total.add(replayLabelLoss, scalars.LabelWeight);
            }
        }

        if (teacherProbabilities is not null)
        {
            Tensor distillation = DistillationLoss(logits, teacherProbabilities);
            distillationLoss = distillation.item<float>();
            total = total.add(distillation, scalars.DistillationWeight);
        }

        double totalValue = total.item<float>();
        var losses = new StepLosses(newLoss.item<float>(), logitLoss, labelLoss, totalValue, Skipped: !double.IsFinite(totalValue))
        {
            Distillation = distillationLoss,
        };
        if (losses.Skipped)
        {
            return double.IsFinite(logitLoss) && double.IsFinite(labelLoss)
                ? losses
                : losses with { DroppedReplayExamples = DropReplayExamplesWithNonFiniteLoss() };
        }

        optimizer.ZeroGrad();
        total.backward();
        if (options.GradientClipNorm > 0)
        {
            _ = nn.utils.clip_grad_norm_(module.parameters(), options.GradientClipNorm);
        }

        optimizer.Step();
        return losses;
    }

    /// <summary>
    /// Writes the optimizer state (Adam moments and step count), or the analytic head's running sums, to
    /// <paramref name="path"/> for a learner checkpoint.
    /// </summary>
    public void SaveOptimizerState(string path)
    {
        if (analyticHead is not null)
        {
            analyticHead.Save(path);
            return;
        }

        optimizer.Save(path);
    }

    /// <summary>
    /// Lays out the file that <see cref="SaveOptimizerState"/> writes over the tensors' memory, so that a thread-pool task
    /// can write it. No training step or load may run until the image is disposed.
    /// </summary>
    internal TensorFileImage OptimizerStateImage() => analyticHead?.ToFileImage() ?? optimizer.ToFileImage();

    /// <summary>
    /// Writes the LwF teacher's weights file, as <see cref="SaveTeacher"/> does, into memory, so that a thread-pool task
    /// can write it to disk. Returns null when there is no teacher.
    /// </summary>
    internal NativeBufferStream? SerializeTeacher()
    {
        if (teacher is null)
        {
            return null;
        }

        var contents = new NativeBufferStream();
        try
        {
            using (var writer = new BinaryWriter(contents, System.Text.Encoding.UTF8, leaveOpen: true))
            {
                teacher.save(writer);
            }

            return contents;
        }
        catch
        {
            contents.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Replaces the optimizer state, or the analytic head's sums, with one written by <see cref="SaveOptimizerState"/>.
    /// Returns false, keeping fresh Adam moments, when the file contains an analytic head's sums and this trainer uses
    /// a gradient strategy, because the strategy changed since the checkpoint and Adam can start over. The head is then
    /// fitted to those sums again, without the analytic head's temperature.
    /// </summary>
    /// <exception cref="InvalidDataException">This trainer is analytic and the file contains no sums of its size.</exception>
    public bool LoadOptimizerState(string path)
    {
        using OptimizerStateFile state = ReadOptimizerState(path);
        return LoadOptimizerState(state);
    }

    /// <summary>
    /// Reads a file written by <see cref="SaveOptimizerState"/> into memory for <see cref="LoadOptimizerState(OptimizerStateFile)"/>.
    /// Touches no tensor, so it runs on any thread, such as a thread-pool task while the learner thread polls the consumer.
    /// </summary>
    /// <exception cref="InvalidDataException">This trainer is analytic and the file contains no sums of its size.</exception>
    internal OptimizerStateFile ReadOptimizerState(string path)
    {
        AnalyticSums? sums = ReadAnalyticSums(path);
        return sums is not null ? new OptimizerStateFile(path, sums, AdamState: null) : new OptimizerStateFile(path, null, NativeBufferStream.ReadFile(path));
    }

    /// <summary>Replaces the optimizer state, or the analytic head's sums, as the path overload does, with a file read by <see cref="ReadOptimizerState"/>.</summary>
    internal bool LoadOptimizerState(OptimizerStateFile state)
    {
        ArgumentNullException.ThrowIfNull(state);
        if (analyticHead is not null)
        {
            analyticHead.Load(state.Sums!);
            RefitLoadedAnalyticHead();
            return true;
        }

        if (state.Sums is not null)
        {
            RefitHeadFromSums(state.Sums);
            return false;
        }

        state.AdamState!.Position = 0;
        optimizer.Load(state.AdamState, state.Path);
        return true;
    }

    // Weights loaded with the sums carry the temperature of the trainer that wrote them, so the head is fitted again at
    // this trainer's. It is fitted now, because the next steps' loss reads the head before any fit.
    private void RefitLoadedAnalyticHead()
    {
        headStale = true;
        FitAnalyticHeadIfStale();
    }

    // A gradient strategy taking over from the analytic one starts from the head fitted to the sums, without the
    // temperature. The calibrated head multiplies every change of its inputs by 1 / temperature (7 to 11 measured), so
    // the first Adam steps on the layers below moved the outputs that many times as far and the gate rejected the result.
    private void RefitHeadFromSums(AnalyticSums loaded)
    {
        (Tensor weight, Tensor bias) = HeadParameters(module);
        using var sums = new AnalyticHead((int)weight.shape[1], Spec.ClassCount, Device);
        sums.Load(loaded);
        using var noGrad = torch.no_grad();
        (Tensor fittedWeight, Tensor fittedBias) = sums.Fit(options.AnalyticRegularization, UnseenClassLogit);
        using (fittedWeight)
        using (fittedBias)
        {
            weight.copy_(fittedWeight);
            bias.copy_(fittedBias);
        }
    }

    /// <summary>
    /// Returns why the analytic strategy cannot train <paramref name="spec"/>, or null when it can: it needs the mlp
    /// architecture with at least one hidden layer, and a last hidden layer of at most <see cref="MaxAnalyticFeatures"/> units.
    /// </summary>
    public static string? AnalyticModelError(ModelSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        if (spec.Architecture != ModelFactory.MlpArchitecture || spec.HiddenSizes.Count == 0)
        {
            return $"The analytic strategy needs the mlp architecture with at least one hidden layer, but the model is '{spec.Architecture}' "
                + $"with hidden sizes [{string.Join(", ", spec.HiddenSizes)}].";
        }

        int width = spec.HiddenSizes[^1];
        if (width > MaxAnalyticFeatures)
        {
            double gigabytes = AnalyticSumBytes(width, spec.ClassCount) / 1e9;
            return FormattableString.Invariant(
                $"The analytic strategy takes a last hidden layer of at most {MaxAnalyticFeatures} units, but it has {width}: its running sums would take {gigabytes:0.#} GB.");
        }

        return null;
    }

    /// <summary>Widest last hidden layer of the analytic strategy. Its sums then take about 2.1 GB, and each fit solves a system of that size.</summary>
    public const int MaxAnalyticFeatures = 16_384;

    /// <summary>
    /// Returns the bytes of the analytic head's running sums for a last hidden layer of <paramref name="width"/> units:
    /// X^T X and X^T Y in float64, each with a bias row.
    /// </summary>
    public static double AnalyticSumBytes(int width, int classCount) => sizeof(double) * (width + 1.0) * (width + 1.0 + classCount);

    // The hidden layers' weights and biases, which the analytic strategy keeps at their initial values, and the head's.
    private static ((Tensor Weight, Tensor Bias)[] Hidden, (Tensor Weight, Tensor Bias) Head) AnalyticLayers(
        ModelSpec spec, nn.Module<Tensor, Tensor> module, TrainerOptions options)
    {
        if (AnalyticModelError(spec) is { } error)
        {
            throw new ArgumentException(error, nameof(spec));
        }

        if (options.UsesDistillation)
        {
            throw new ArgumentException(
                "The analytic strategy fits its head in closed form and cannot distill. Set DistillationWeight to 0.", nameof(options));
        }

        Dictionary<string, Parameter> parameters = module.named_parameters().ToDictionary(pair => pair.name, pair => pair.parameter);
        (Tensor, Tensor)[] hidden = Enumerable.Range(0, spec.HiddenSizes.Count)
            .Select(index => (
                (Tensor)parameters[MultilayerPerceptron.HiddenParameterName(index, "weight")],
                (Tensor)parameters[MultilayerPerceptron.HiddenParameterName(index, "bias")]))
            .ToArray();
        return (hidden, HeadParameters(module));
    }

    // The input width of the mlp's head, or null for a model without one.
    private static int? HeadInputWidth(nn.Module<Tensor, Tensor> module)
    {
        string name = MultilayerPerceptron.HeadParameterName("weight");
        foreach ((string parameterName, Parameter parameter) in module.named_parameters())
        {
            if (parameterName == name)
            {
                return (int)parameter.shape[1];
            }
        }

        return null;
    }

    // The weight and bias of the mlp's head.
    private static (Tensor Weight, Tensor Bias) HeadParameters(nn.Module<Tensor, Tensor> module)
    {
        Dictionary<string, Parameter> parameters = module.named_parameters().ToDictionary(pair => pair.name, pair => pair.parameter);
        return (parameters[MultilayerPerceptron.HeadParameterName("weight")], parameters[MultilayerPerceptron.HeadParameterName("bias")]);
    }

    // The last hidden layer's output, which is the head's input.
    private Tensor HiddenFeatures(Tensor input)
    {
        Tensor features = input.flatten(1).mul(inputScale!);
        foreach ((Tensor weight, Tensor bias) in hiddenLayers)
        {
            features = relu(linear(features, weight, bias));
        }

        return features;
    }

    private StepLosses AnalyticStep(IReadOnlyList<LabeledExample> batch, AnalyticHead head)
    {
        using var noGrad = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        Tensor input = TensorBatches.Features(batch, 0, batch.Count, Device);
        Tensor labels = TensorBatches.Labels(batch, 0, batch.Count, Device);
        Tensor features = HiddenFeatures(input);

        // For the learner's loss metric: the squared error of the head as last fitted against one-hot labels, summed
        // over classes, which is what the fit minimizes. A class without examples counts as an output of 0, as the fit
        // gives it, and not as its masking bias, so a new task's first batches do not report a loss near 1,000.
        // The batch itself is not fitted yet.
        // The head's outputs are divided by the temperature, so they are multiplied back.
        using Scalar unseenThreshold = (UnseenClassLogit / 2).ToScalar();
        using Scalar zero = 0.0.ToScalar();
        using Scalar temperature = AnalyticTemperature.ToScalar();
        Tensor outputs = linear(features, headLayer.Weight, headLayer.Bias).mul(temperature);
        Tensor fitted = outputs.masked_fill(outputs.le(unseenThreshold), zero);
        Tensor targets = one_hot(labels, Spec.ClassCount).to(fitted.dtype);
        // The product and not square(), because TorchSharp's square() passes an implicitly converted exponent that
        // the finalizer may free during the call.
        Tensor errors = fitted.add(targets, scalars.MinusOne);
        double loss = errors.mul(errors).sum(1).mean().item<float>();
        var losses = new StepLosses(loss, 0, 0, loss, Skipped: !double.IsFinite(loss) || !features.isfinite().all().item<bool>());
        if (losses.Skipped)
        {
            SkippedStepCount++;
            return losses;
        }

        head.Accumulate(features, labels);
        StepCount++;
        headStale = true;
        foreach (LabeledExample example in batch)
        {
            _ = seenClasses.Add(example.Label);
        }

        lastTask = batch[0].Task;
        return losses;
    }

    private void FitAnalyticHeadIfStale()
    {
        if (analyticHead is null || !headStale)
        {
            return;
        }

        using var noGrad = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        (Tensor weight, Tensor bias) = analyticHead.Fit(options.AnalyticRegularization, UnseenClassLogit);
        headLayer.Weight.copy_(weight);
        headLayer.Bias.copy_(bias);
        if (AnalyticTemperature != 1.0)
        {
            ScaleHead(1.0 / AnalyticTemperature);
        }

        headStale = false;
    }

    // Multiplies the head's outputs, unseen classes' bias included, by the factor.
    private void ScaleHead(double factor)
    {
        using var noGrad = torch.no_grad();
        using Scalar scale = factor.ToScalar();
        headLayer.Weight.mul_(scale);
        headLayer.Bias.mul_(scale);
    }

    // The head learns at the configured rate and the layers below it at FeatureLearningRateScale times that rate.
    private AdamOptimizer CreateOptimizer()
    {
        double featureRate = options.LearningRate * options.FeatureLearningRateScale;
        return new AdamOptimizer(module.named_parameters().Select(
            pair => (pair.parameter, ModelFactory.IsHeadParameter(pair.name) ? options.LearningRate : featureRate)));
    }

    // LwF's teacher is the model as it was when the stream moved on to a new task: it has learned the classes seen so far.
    private void FreezeTeacherOnTaskChange(int task)
    {
        bool taskChanged = lastTask is not null && lastTask != task;
        lastTask = task;
        if (!options.UsesDistillation || !taskChanged || seenClasses.Count == 0)
        {
            return;
        }

        teacher?.Dispose();
        teacher = ModelFactory.Clone(Spec, module, Device);
        teacher.eval();
        teacherClasses = seenClasses.Order().Select(label => (long)label).ToArray();
    }

    // The teacher's softened probabilities over the classes it has learned, which stay constant over the batch's gradient steps.
    private Tensor? TeacherProbabilities(Tensor input)
    {
        if (teacher is null)
        {
            return null;
        }

        using var noGrad = torch.no_grad();
        Tensor known = TensorBatches.ToDevice(torch.tensor(teacherClasses), Device);
        Tensor logits = teacher.forward(input).index_select(1, known);
        return softmax(logits / scalars.Temperature, 1);
    }

    // T^2 * KL(teacher || student) over the teacher's classes (Hinton et al., 2015), averaged over the batch.
    private Tensor DistillationLoss(Tensor logits, Tensor teacherProbabilities)
    {
        Tensor known = TensorBatches.ToDevice(torch.tensor(teacherClasses), Device);
        Tensor studentLogProbabilities = log_softmax(logits.index_select(1, known) / scalars.Temperature, 1);
        Tensor teacherLogProbabilities = teacherProbabilities.clamp_min(scalars.ProbabilityFloor).log();
        Tensor divergence = teacherProbabilities.mul(teacherLogProbabilities.add(studentLogProbabilities, scalars.MinusOne)).sum(1).mean();
        return divergence * scalars.TemperatureSquared;
    }

    private Tensor PresentClassMask(Tensor labels)
    {
        Tensor mask = torch.zeros([Spec.ClassCount], ScalarType.Bool, Device);
        mask.index_fill_(0, labels.unique().Item1, scalars.True);
        return mask.unsqueeze(0);
    }

    private Tensor ReplayLogitLoss()
    {
        IReadOnlyList<ReplayExample> sample = ReplayBuffer.Sample(options.ReplayBatchSize);
        Tensor input = ReplayTensors.Features(sample, Spec.FeatureCount, Device);
        input = ReplayTensors.Shift(input, options.ReplayShiftPixels, augmentationRandom);
        Tensor stored = ReplayTensors.Logits(sample, Spec.ClassCount, Device);
        return mse_loss(module.forward(input), stored);
    }

    private Tensor ReplayLabelLoss()
    {
        IReadOnlyList<ReplayExample> sample = ReplayBuffer.Sample(options.ReplayBatchSize);
        Tensor input = ReplayTensors.Features(sample, Spec.FeatureCount, Device);
        input = ReplayTensors.Shift(input, options.ReplayShiftPixels, augmentationRandom);
        Tensor labels = ReplayTensors.Labels(sample, Device);
        return cross_entropy(module.forward(input), labels);
    }

    /// <summary>
    /// Removes the replay examples whose own replay loss is not finite, and returns how many it removed. Such an example
    /// (features large enough that its stored logits, or their squared error, overflow FP32) makes every step that
    /// samples it non-finite, and each checkpoint would keep it, so a rollback would not get rid of it.
    /// </summary>
    private int DropReplayExamplesWithNonFiniteLoss()
    {
        const int ChunkSize = 256;
        ReplayExample[] examples = ReplayBuffer.Examples.ToArray();
        var finiteExamples = new List<ReplayExample>(examples.Length);
        using (torch.no_grad())
        {
            for (int start = 0; start < examples.Length; start += ChunkSize)
            {
                using var scope = torch.NewDisposeScope();
                ReplayExample[] chunk = examples[start..Math.Min(start + ChunkSize, examples.Length)];
                Tensor logits = module.forward(ReplayTensors.Features(chunk, Spec.FeatureCount, Device));
                // A product, not square(), for the reason given in AnalyticStep.
                Tensor errors = logits.add(ReplayTensors.Logits(chunk, Spec.ClassCount, Device), scalars.MinusOne);
                Tensor logitLosses = errors.mul(errors).mean([1]);
                Tensor labelLosses = cross_entropy(logits, ReplayTensors.Labels(chunk, Device), reduction: nn.Reduction.None);
                bool[] finite = logitLosses.isfinite().logical_and(labelLosses.isfinite()).cpu().data<bool>().ToArray();
                finiteExamples.AddRange(chunk.Where((_, index) => finite[index]));
            }
        }

        int dropped = examples.Length - finiteExamples.Count;
        if (dropped > 0)
        {
            var seenByClass = new Dictionary<int, long>(ReplayBuffer.SeenByClass);
            ReplayBuffer.Restore(finiteExamples, ReplayBuffer.Seen, seenByClass);
        }

        return dropped;
    }

    private void OfferToReplay(IReadOnlyList<LabeledExample> batch, Tensor logits)
    {
        if (!options.UsesReplay)
        {
            logits.Dispose();
            return;
        }

        float[] values = logits.cpu().data<float>().ToArray();
        logits.Dispose();
        int classCount = Spec.ClassCount;
        for (int index = 0; index < batch.Count; index++)
        {
            LabeledExample example = batch[index];
            float[] stored = values.AsSpan(index * classCount, classCount).ToArray();
            _ = ReplayBuffer.Offer(new ReplayExample(example.Id, example.Task, example.Label, example.Features, stored));
        }
    }
}
