using System.Buffers;
using System.Diagnostics;
using ContinualServe.Model.Serving;
using ContinualServe.Model.Telemetry;
using Microsoft.Extensions.Options;

namespace ContinualServe.Server.Batching;

/// <summary>
/// Queues inference requests and runs them on one worker thread as shared forward passes of up to
/// <see cref="BatchingOptions.MaxBatchSize"/> examples. A batch runs when it is full or when its oldest
/// request has waited <see cref="BatchingOptions.MaxQueueDelay"/>; with no delay it runs whatever is queued
/// as soon as the previous pass ends.
/// A request that finds the model idle and the queue empty runs on its own thread instead. One pass runs at a
/// time, and each pass is synchronous on one thread, where TorchSharp's per-thread no_grad and dispose scopes hold.
/// </summary>
public sealed partial class InferenceBatcher : IDisposable
{
    private readonly LiveModel live;
    private readonly BatchingOptions options;
    private readonly string modelName;
    private readonly ILogger<InferenceBatcher> logger;
    private readonly Queue<PendingRequest> queue = new();
    private readonly Lock queueLock = new();
    private readonly Lock passLock = new();
    private readonly SemaphoreSlim signal = new(0);
    private readonly Thread worker;
    private volatile bool stopping;
    private int waiting;
    private long forwardPasses;

    public InferenceBatcher(LiveModel live, IOptions<BatchingOptions> options, IOptions<Hosting.ServerOptions> serverOptions, ILogger<InferenceBatcher> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(serverOptions);
        this.live = live;
        this.options = options.Value;
        this.logger = logger;
        modelName = serverOptions.Value.ModelName;
        worker = new Thread(RunWorker) { IsBackground = true, Name = "continualserve-batcher" };
        worker.Start();
    }

    /// <summary>Forward passes run so far; tests use it to check that requests shared a pass.</summary>
    public long ForwardPasses => Interlocked.Read(ref forwardPasses);

    /// <summary>Requests queued or collected into the next batch, not yet in a forward pass.</summary>
    public int WaitingRequests
    {
        get
        {
            lock (queueLock)
            {
                return waiting;
            }
        }
    }

    /// <summary>
    /// Queues <paramref name="count"/> examples (row by row in <paramref name="features"/>, which the batcher
    /// returns to <see cref="ArrayPool{T}.Shared"/> when done) and completes when they have been computed.
    /// <paramref name="featureCount"/> is the row width the request was validated against. A request whose width no
    /// longer matches the live model when its batch runs ends with <see cref="BatchStatus.InputShapeChanged"/>.
    /// </summary>
    public Task<BatchOutcome> SubmitAsync(float[] features, int count, int featureCount, long? requestedVersion)
    {
        ArgumentNullException.ThrowIfNull(features);
        var request = new PendingRequest(features, count, featureCount, requestedVersion, Stopwatch.GetTimestamp(), DateTime.UtcNow + options.RequestTimeout);
        bool queued;
        bool inline = false;
        lock (queueLock)
        {
            // Capacity counts every request not yet in a forward pass, including those collected into the next batch.
            queued = !stopping && waiting < options.QueueCapacity;
            if (queued)
            {
                // No waiting request means none queued and none collected by the worker for its next pass, so a
                // request that runs inline never overtakes an earlier one.
                inline = options.MaxQueueDelay == TimeSpan.Zero && waiting == 0 && passLock.TryEnter();
                waiting++;
                if (!inline)
                {
                    queue.Enqueue(request);
                }
            }
        }

        if (!queued)
        {
            ArrayPool<float>.Shared.Return(features);
            return Task.FromResult(new BatchOutcome(stopping ? BatchStatus.ShuttingDown : BatchStatus.QueueFull, 0, null, 0));
        }

        if (inline)
        {
            // The model is idle and nothing is queued: run on this thread and skip the handoff to the worker.
            try
            {
                RunBatch([request]);
            }
            finally
            {
                passLock.Exit();
            }

            if (QueueHasWaiting())
            {
                signal.Release();
            }

            return request.Completion.Task;
        }

        signal.Release();
        return request.Completion.Task;
    }

    public void Dispose()
    {
        stopping = true;
        signal.Release();
        worker.Join(TimeSpan.FromSeconds(10));
        lock (queueLock)
        {
            while (queue.TryDequeue(out PendingRequest? request))
            {
                request.Complete(new BatchOutcome(BatchStatus.ShuttingDown, 0, null, 0));
            }
        }

        signal.Dispose();
    }

    private void RunWorker()
    {
        var batch = new List<PendingRequest>();
        while (!stopping)
        {
            signal.Wait(TimeSpan.FromMilliseconds(100));
            if (!CollectBatch(batch))
            {
                continue;
            }

            passLock.Enter();
            try
            {
                RunBatch(batch);
            }
            finally
            {
                passLock.Exit();
            }

            batch.Clear();
        }
    }

    private void RunBatch(List<PendingRequest> batch)
    {
        try
        {
            Execute(batch);
        }
        catch (Exception exception) when (exception is not OutOfMemoryException)
        {
            // A failed forward pass must not kill the worker: fail this batch's requests and go on.
            LogBatchFailed(logger, exception, batch.Count);
            foreach (PendingRequest request in batch)
            {
                request.Fail(exception);
            }
        }
    }

    // Moves queued requests into the batch until it is full or the dispatch rule allows it to run; false when nothing is queued.
    private bool CollectBatch(List<PendingRequest> batch)
    {
        int examples = 0;
        long oldest = 0;
        while (true)
        {
            bool nextDoesNotFit;
            lock (queueLock)
            {
                while (queue.TryPeek(out PendingRequest? next) && (batch.Count == 0 || examples + next.Count <= options.MaxBatchSize))
                {
                    queue.Dequeue();
                    if (batch.Count == 0)
                    {
                        oldest = next.QueuedAt;
                    }

                    batch.Add(next);
                    examples += next.Count;
                }

                // Decided under the same lock as the collection: a request queued after it is collected on the next
                // turn, not taken as one that did not fit, which would run a half-full batch at once.
                nextDoesNotFit = queue.Count > 0;
            }

            if (batch.Count == 0)
            {
                return false;
            }

            TimeSpan waited = Stopwatch.GetElapsedTime(oldest);
            bool full = examples >= options.MaxBatchSize || nextDoesNotFit;
            if (full || waited >= options.MaxQueueDelay || stopping)
            {
                return true;
            }

            signal.Wait(options.MaxQueueDelay - waited);
        }
    }

    private bool QueueHasWaiting()
    {
        lock (queueLock)
        {
            return queue.Count > 0;
        }
    }

    private void Execute(List<PendingRequest> batch)
    {
        lock (queueLock)
        {
            waiting -= batch.Count;
        }

        DateTime now = DateTime.UtcNow;
        if (!live.TryAcquire(out ModelLease lease))
        {
            CompleteAll(batch, new BatchOutcome(BatchStatus.NoModel, 0, null, 0));
            return;
        }

        using (lease)
        {
            ServedModel model = lease.Model;
            var runnable = new List<PendingRequest>(batch.Count);
            foreach (PendingRequest request in batch)
            {
                if (request.Deadline < now)
                {
                    request.Complete(new BatchOutcome(BatchStatus.DeadlineExceeded, model.Version, null, 0));
                }
                else if (request.RequestedVersion is long wanted && wanted != model.Version)
                {
                    request.Complete(new BatchOutcome(BatchStatus.VersionNotLoaded, model.Version, null, 0));
                }
                else if (request.FeatureCount != model.Spec.FeatureCount)
                {
                    request.Complete(new BatchOutcome(BatchStatus.InputShapeChanged, model.Version, null, 0));
                }
                else
                {
                    runnable.Add(request);
                }
            }

            if (runnable.Count > 0)
            {
                RunForwardPass(model, runnable);
            }
        }
    }

    private void RunForwardPass(ServedModel model, List<PendingRequest> runnable)
    {
        int featureCount = model.Spec.FeatureCount;
        int classCount = model.Spec.ClassCount;
        int total = runnable.Sum(request => request.Count);
        float[] features = ArrayPool<float>.Shared.Rent(total * featureCount);
        float[] probabilities = ArrayPool<float>.Shared.Rent(total * classCount);
        try
        {
            int offset = 0;
            foreach (PendingRequest request in runnable)
            {
                request.Features.AsSpan(0, request.Count * featureCount).CopyTo(features.AsSpan(offset * featureCount));
                ContinualServeMetrics.QueueDuration.WithLabels(modelName).Observe(Stopwatch.GetElapsedTime(request.QueuedAt).TotalSeconds);
                offset += request.Count;
            }

            model.Predict(features.AsSpan(0, total * featureCount), total, probabilities);
            Interlocked.Increment(ref forwardPasses);
            ContinualServeMetrics.BatchSize.WithLabels(modelName).Observe(total);

            offset = 0;
            foreach (PendingRequest request in runnable)
            {
                float[] rows = probabilities.AsSpan(offset * classCount, request.Count * classCount).ToArray();
                request.Complete(new BatchOutcome(BatchStatus.Completed, model.Version, rows, classCount));
                offset += request.Count;
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(features);
            ArrayPool<float>.Shared.Return(probabilities);
        }
    }

    private static void CompleteAll(List<PendingRequest> batch, BatchOutcome outcome)
    {
        foreach (PendingRequest request in batch)
        {
            request.Complete(outcome);
        }
    }

    [LoggerMessage(EventId = 450, Level = LogLevel.Error, Message = "A forward pass over {Requests} batched requests failed; each gets a 500 response")]
    private static partial void LogBatchFailed(ILogger logger, Exception exception, int requests);

    private sealed class PendingRequest(float[] features, int count, int featureCount, long? requestedVersion, long queuedAt, DateTime deadline)
    {
        private int completed;

        public float[] Features { get; } = features;

        public int Count { get; } = count;

        public int FeatureCount { get; } = featureCount;

        public long? RequestedVersion { get; } = requestedVersion;

        public long QueuedAt { get; } = queuedAt;

        public DateTime Deadline { get; } = deadline;

        public TaskCompletionSource<BatchOutcome> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public void Complete(BatchOutcome outcome)
        {
            if (Interlocked.Exchange(ref completed, 1) == 0)
            {
                // The request completes even if returning the buffer throws (an array the pool did not rent), so the
                // exception reaches the batch's error log without leaving the caller waiting forever.
                try
                {
                    ArrayPool<float>.Shared.Return(Features);
                }
                finally
                {
                    Completion.SetResult(outcome);
                }
            }
        }

        public void Fail(Exception exception)
        {
            if (Interlocked.Exchange(ref completed, 1) == 0)
            {
                try
                {
                    ArrayPool<float>.Shared.Return(Features);
                }
                finally
                {
                    Completion.SetException(exception);
                }
            }
        }
    }
}
