using Confluent.Kafka;
using ContinualServe.Model.Telemetry;
using Microsoft.Extensions.Logging;

namespace ContinualServe.Learner;

/// <summary>
/// Examples of a task lower than the current one that has no column in the accuracy matrix, such as tasks 1 and 2 read
/// by a learner whose group started at task 3. Tasks arrive in increasing order, so such a task never gets a column:
/// its examples are trained, their holdout share included, and reported instead of being evaluated.
/// </summary>
public sealed partial class ContinualLearner
{
    // Late tasks already logged by warning 286. Only the learner thread uses it.
    private readonly HashSet<int> reportedLateTasks = [];

    // A task that was the current one keeps its column and its holdout set when its examples come again later.
    private bool IsLateTask(int task) => task < currentTask && !matrix.Tasks.Contains(task);

    private void CountLateTaskExample(int task, TopicPartitionOffset position)
    {
        ContinualServeMetrics.LearnerExamples.WithLabels("late_task").Inc();
        if (reportedLateTasks.Add(task))
        {
            LogLateTask(logger, task, currentTask, position);
        }
    }

    [LoggerMessage(EventId = 286, Level = LogLevel.Warning, Message = "Read an example of task {Task} at {Position} while task {CurrentTask} is the current one. Tasks must arrive in increasing order, so task {Task} gets no column in the accuracy matrix: its examples are trained, including those routed to holdout, and it is never evaluated. They are counted as late_task in continualserve_learner_examples_total, and this warning is logged once per task")]
    private static partial void LogLateTask(ILogger logger, int task, int currentTask, TopicPartitionOffset position);
}
