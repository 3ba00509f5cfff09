using System.Runtime.InteropServices;
using ContinualServe.Learner.Checkpoints;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ContinualServe.Learner.Training;

/// <summary>
/// Adam (Kingma and Ba, 2015) without weight decay, as torch.optim.Adam computes it: m = beta1 m + (1 − beta1) g,
/// v = beta2 v + (1 − beta2) g², p −= lr / (1 − beta1^t) · m / (sqrt(v) / sqrt(1 − beta2^t) + eps).
/// NOTE: TorchSharp 0.107's own Adam passes implicitly created Scalars to native calls by raw handle, and their
/// finalizer can free one while the call still reads it; runs of several thousand steps intermittently failed
/// in addcdiv_ with "Expected false to be true" from c10's Scalar::toFloat. Here every Scalar is disposed
/// explicitly after its call, which keeps it alive until then; add_(Scalar) gets its alpha of 1 explicitly too,
/// because the one-argument overload converts it implicitly.
/// Each parameter has its own learning rate, so that the trainer can move the feature layers more slowly than the head.
/// </summary>
internal sealed class AdamOptimizer : IDisposable
{
    private const double Beta1 = 0.9;
    private const double Beta2 = 0.999;
    private const double Epsilon = 1e-8;

    private readonly Parameter[] parameters;
    private readonly Tensor[] firstMoments;
    private readonly Tensor[] secondMoments;
    private readonly double[] learningRates;
    private long step;

    /// <summary>Creates the optimizer of <paramref name="parameters"/>, each with its learning rate, in the order of a saved state.</summary>
    public AdamOptimizer(IEnumerable<(Parameter Parameter, double LearningRate)> parameters)
    {
        (Parameter Parameter, double LearningRate)[] pairs = parameters.ToArray();
        this.parameters = pairs.Select(pair => pair.Parameter).ToArray();
        learningRates = pairs.Select(pair => pair.LearningRate).ToArray();
        firstMoments = this.parameters.Select(parameter => torch.zeros_like(parameter).DetachFromDisposeScope()).ToArray();
        secondMoments = this.parameters.Select(parameter => torch.zeros_like(parameter).DetachFromDisposeScope()).ToArray();
    }

    public void ZeroGrad()
    {
        foreach (Parameter parameter in parameters)
        {
            using Tensor? gradient = parameter.grad;
            gradient?.zero_();
        }
    }

    public void Step()
    {
        step++;
        double biasCorrection1 = 1 - Math.Pow(Beta1, step);
        double biasCorrection2 = 1 - Math.Pow(Beta2, step);
        using var noGrad = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        using Scalar beta1 = Beta1.ToScalar();
        using Scalar oneMinusBeta1 = (1 - Beta1).ToScalar();
        using Scalar beta2 = Beta2.ToScalar();
        using Scalar oneMinusBeta2 = (1 - Beta2).ToScalar();
        using Scalar correction2 = Math.Sqrt(biasCorrection2).ToScalar();
        using Scalar epsilon = Epsilon.ToScalar();
        using Scalar one = 1.0.ToScalar();
        for (int index = 0; index < parameters.Length; index++)
        {
            Tensor? gradient = parameters[index].grad;
            if (gradient is null)
            {
                continue;
            }

            firstMoments[index].mul_(beta1).add_(gradient, alpha: oneMinusBeta1);
            secondMoments[index].mul_(beta2).addcmul_(gradient, gradient, value: oneMinusBeta2);
            Tensor denominator = secondMoments[index].sqrt().div_(correction2).add_(epsilon, one);
            using Scalar stepSize = (-learningRates[index] / biasCorrection1).ToScalar();
            parameters[index].addcdiv_(firstMoments[index], denominator, value: stepSize);
        }
    }

    /// <summary>
    /// Writes the step count and both moments of every parameter, in parameter order, for a checkpoint. Does not
    /// flush to disk, because the checkpoint store flushes every file it contains before it commits the checkpoint.
    /// A moment's values are written from the tensor's memory, without a managed copy, because this runs on the
    /// learner thread in every promoted round.
    /// </summary>
    public void Save(string path)
    {
        using TensorFileImage image = ToFileImage();
        image.WriteFile(path);
    }

    /// <summary>
    /// Lays out the file that <see cref="Save(string)"/> writes over CPU copies of the moments, so that a thread-pool
    /// task can write it. For moments in CPU memory the copies share their memory, so no moment may change until the
    /// image is disposed.
    /// </summary>
    internal TensorFileImage ToFileImage()
    {
        if (!BitConverter.IsLittleEndian)
        {
            throw new PlatformNotSupportedException("Optimizer state files are little-endian; this machine is not.");
        }

        var image = new TensorFileImage();
        try
        {
            image.Writer.Write(step);
            image.Writer.Write(parameters.Length);
            foreach (Tensor moment in firstMoments.Concat(secondMoments))
            {
                Tensor values = moment.detach().cpu().contiguous();
                image.Writer.Write(checked((int)values.numel()));
                image.AppendTensor(values);
            }

            return image;
        }
        catch
        {
            image.Dispose();
            throw;
        }
    }

    /// <summary>Restores a state written by <see cref="Save(string)"/>; the parameters must have the same shapes.</summary>
    public void Load(string path)
    {
        using FileStream stream = File.OpenRead(path);
        Load(stream, path);
    }

    /// <summary>
    /// Restores a state that <paramref name="source"/> contains from its position on, as <see cref="Load(string)"/> does.
    /// <paramref name="path"/> names the file in messages. Leaves the stream open.
    /// </summary>
    public void Load(Stream source, string path)
    {
        using var reader = new BinaryReader(source, System.Text.Encoding.UTF8, leaveOpen: true);
        long savedStep = reader.ReadInt64();
        int count = reader.ReadInt32();
        if (count != parameters.Length)
        {
            throw new InvalidDataException($"Optimizer state {path} has {count} parameters; the model has {parameters.Length}.");
        }

        using var noGrad = torch.no_grad();
        foreach (Tensor moment in firstMoments.Concat(secondMoments))
        {
            int length = reader.ReadInt32();
            if (length != moment.numel())
            {
                throw new InvalidDataException($"Optimizer state {path} has a moment of {length} values; expected {moment.numel()}.");
            }

            var data = new float[length];
            reader.BaseStream.ReadExactly(MemoryMarshal.AsBytes(data.AsSpan()));
            using Tensor values = torch.tensor(data, moment.shape);
            using Tensor placed = values.to(moment.device);
            moment.copy_(placed);
        }

        step = savedStep;
    }

    public void Dispose()
    {
        foreach (Tensor moment in firstMoments.Concat(secondMoments))
        {
            moment.Dispose();
        }
    }
}
