using ContinualServe.Model;
using ContinualServe.Model.Store;
using TorchSharp;
using static TorchSharp.torch;

namespace ContinualServe.Learner.Tests;

/// <summary>
/// Modules whose initial weights come from a private generator. Seeding libtorch's process-wide generator is not
/// enough in tests, because test classes run in parallel and any of them can draw from it between the seed and the
/// module's construction.
/// </summary>
internal static class SeededModules
{
    /// <summary>
    /// Builds the module of <paramref name="spec"/> and redraws every weight and bias from a generator seeded with
    /// <paramref name="seed"/>. Each layer gets the distribution of libtorch's default initialization of linear and
    /// convolution layers (kaiming_uniform_ with a = sqrt(5)), U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for the weight and the
    /// bias, where fan_in is the weight's inputs per output. The values differ from those that manual_seed(seed) gives.
    /// </summary>
    public static nn.Module<Tensor, Tensor> Create(ModelSpec spec, int seed)
    {
        nn.Module<Tensor, Tensor> module = ModelFactory.Create(spec);
        using var generator = new Generator((ulong)seed);
        using var noGrad = torch.no_grad();
        double bound = 0;
        foreach ((string name, TorchSharp.Modules.Parameter parameter) in module.named_parameters())
        {
            if (name.EndsWith(".weight", StringComparison.Ordinal))
            {
                long fanIn = parameter.numel() / parameter.shape[0];
                bound = 1.0 / Math.Sqrt(fanIn);
            }
            else if (!name.EndsWith(".bias", StringComparison.Ordinal))
            {
                throw new InvalidOperationException($"Parameter '{name}' is neither a weight nor a bias.");
            }

            // Tensor.uniform_ and not nn.init.uniform_, because TorchSharp 0.107's nn.init.uniform_ ignores its generator
            // argument and draws from the process-wide generator.
            parameter.uniform_(-bound, bound, generator);
        }

        return module;
    }

    /// <summary>
    /// Saves the first version of <paramref name="storeDirectory"/>, untrained, with the weights of
    /// <see cref="Create"/>. A learner started on that store then starts from it, instead of seeding libtorch's
    /// process-wide generator and drawing its own initial weights from it.
    /// </summary>
    public static ModelVersion SaveInitialVersion(string storeDirectory, ModelSpec spec, int seed)
    {
        using nn.Module<Tensor, Tensor> module = Create(spec, seed);
        return new ModelStore(storeDirectory).Save(spec, module, new ModelManifest());
    }
}
