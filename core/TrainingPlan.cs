using Orchestrator.Core.Specs;

namespace Orchestrator.Core;

/// <summary>Step arithmetic shared by workers (what to run) and the CLI (how far along a job is).</summary>
public sealed record TrainingPlan(long StepsPerEpoch, long TotalSteps, int TrainingEpochs)
{
    public static TrainingPlan For(JobSpec spec)
    {
        var samples = spec.Data.TrainLimit > 0 ? spec.Data.TrainLimit : FashionMnistFiles.TrainCount;
        // The last partial batch is dropped, as PyTorch's drop_last=True: every step sees a full batch.
        var perEpoch = Math.Max(1, samples / spec.Train.BatchSize);
        if (spec.Train.Steps > 0)
            return new TrainingPlan(perEpoch, spec.Train.Steps, (int)((spec.Train.Steps + perEpoch - 1) / perEpoch));
        return new TrainingPlan(perEpoch, perEpoch * spec.Train.Epochs, spec.Train.Epochs);
    }
}
