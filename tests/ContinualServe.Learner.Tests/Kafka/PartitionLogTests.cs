using Confluent.Kafka;
using Shouldly;
using Xunit;

namespace ContinualServe.Learner.Tests.Kafka;

public sealed class PartitionLogTests
{
    // The assignment log once printed an empty list, "assigned partitions  to the learner", for a member with none.
    [Fact]
    public void EmptyAssignmentSaysNoPartitions() =>
        ContinualLearner.DescribePartitions([]).ShouldBe("no partitions");

    [Fact]
    public void PartitionsAreListed() =>
        ContinualLearner.DescribePartitions([new TopicPartition("examples", 0), new TopicPartition("examples", 1)])
            .ShouldBe("partitions examples [[0]], examples [[1]]");
}
