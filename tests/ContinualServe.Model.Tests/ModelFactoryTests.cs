using Shouldly;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace ContinualServe.Model.Tests;

public sealed class ModelFactoryTests
{
    [Theory]
    [InlineData(ModelFactory.MlpArchitecture)]
    [InlineData(ModelFactory.CnnArchitecture)]
    public void HeadIsLastWeightAndBias(string architecture)
    {
        using nn.Module<Tensor, Tensor> module = ModelFactory.Create(new ModelSpec { Architecture = architecture, InputShape = [1, 28, 28] });
        string[] names = module.named_parameters().Select(pair => pair.name).ToArray();

        string[] head = names.Where(ModelFactory.IsHeadParameter).ToArray();

        head.Length.ShouldBe(2, string.Join(", ", names));
        head.ShouldBe(names[^2..]);
        module.named_parameters().Single(pair => pair.name == head[0]).parameter.shape[0].ShouldBe(10);
    }
}
