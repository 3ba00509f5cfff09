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

    // The store checks weights files against DescribeState, so it must list what Create builds, tensor for tensor.
    [Theory]
    [InlineData(ModelFactory.MlpArchitecture, new[] { 784 }, new int[0])]
    [InlineData(ModelFactory.MlpArchitecture, new[] { 16 }, new[] { 8 })]
    [InlineData(ModelFactory.MlpArchitecture, new[] { 1, 28, 28 }, new[] { 32, 5, 7 })]
    [InlineData(ModelFactory.CnnArchitecture, new[] { 1, 28, 28 }, new int[0])]
    [InlineData(ModelFactory.CnnArchitecture, new[] { 64 }, new[] { 4, 6 })]
    public void DescribedStateMatchesCreatedModule(string architecture, int[] inputShape, int[] hiddenSizes)
    {
        var spec = new ModelSpec { Architecture = architecture, InputShape = inputShape, HiddenSizes = hiddenSizes, Labels = ["a", "b", "c"] };
        using nn.Module<Tensor, Tensor> module = ModelFactory.Create(spec);

        IReadOnlyList<TensorLayout> described = ModelFactory.DescribeState(spec);
        IReadOnlyList<TensorLayout> built = TensorLayout.StateOf(module);

        described.Select(layout => layout.Name).ShouldBe(built.Select(layout => layout.Name), ignoreOrder: true);
        foreach (TensorLayout tensor in built)
        {
            TensorLayout expected = described.Single(layout => layout.Name == tensor.Name);
            expected.DataType.ShouldBe(tensor.DataType, tensor.Name);
            expected.Shape.ShouldBe(tensor.Shape, tensor.Name);
        }
    }

    [Fact]
    public void DescribeStateRejectsUnknownArchitecture()
    {
        var spec = new ModelSpec { Architecture = "transformer" };

        Should.Throw<InvalidDataException>(() => ModelFactory.DescribeState(spec)).Message.ShouldContain("'transformer'");
    }
}
