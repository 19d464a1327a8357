using Orchestrator.Core.Specs;

namespace Orchestrator.Core;

/// <summary>
/// Step arithmetic, shared by workers (what to run) and the CLI (how far along a job is): steps per training epoch,
/// steps in all, and training epochs.
/// </summary>
public sealed record TrainingPlan(long StepsPerEpoch, long TotalSteps, int TrainingEpochs)
{
    /// <summary>An image job's plan: its training set is Fashion-MNIST's (or its first <c>data.trainLimit</c> images).</summary>
    public static TrainingPlan For(JobSpec spec) => For(spec.Train, spec.Data.TrainLimit > 0 ? spec.Data.TrainLimit : FashionMnistFiles.TrainCount);

    /// <summary>The plan for <paramref name="samples"/> training examples, one batch per step.</summary>
    public static TrainingPlan For(TrainSpec train, long samples)
    {
        var perEpoch = StepsPerEpochFor(samples, train.BatchSize);
        if (train.Steps > 0)
            return new TrainingPlan(perEpoch, train.Steps, (int)((train.Steps + perEpoch - 1) / perEpoch));
        return new TrainingPlan(perEpoch, perEpoch * train.Epochs, train.Epochs);
    }

    /// <summary>Steps in one pass over <paramref name="samples"/> examples taking <paramref name="globalBatch"/> per step (a
    /// data-parallel job's global batch: every rank's batch together). The last partial batch is dropped, as PyTorch's
    /// drop_last=True: every step sees a full batch.</summary>
    public static long StepsPerEpochFor(long samples, long globalBatch) => Math.Max(1, samples / globalBatch);
}
