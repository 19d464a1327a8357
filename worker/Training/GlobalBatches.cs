using Orchestrator.Core;

namespace Orchestrator.Worker.Training;

/// <summary>
/// Where a data-parallel job is in its data: the training epoch and the samples consumed in it. A global batch is
/// batch × world samples, rank r taking [Cursor + r·B, Cursor + (r+1)·B); the last partial global batch of a training epoch
/// is dropped (PyTorch's drop_last). The world size may change between steps.
/// </summary>
public sealed class GlobalBatches(TrainSpec train, long samples, string source)
{
    int _world = 1;

    public int TrainingEpoch { get; private set; }
    public long Cursor { get; private set; }

    public int World
    {
        get => _world;
        set => _world = (long)value * train.BatchSize <= samples ? value
            : throw new ArgumentException($"{value} ranks × batch {train.BatchSize} exceed the {samples} training samples of {source}");
    }

    long Global => (long)train.BatchSize * _world;

    /// <summary>The first sample of rank <paramref name="rank"/>'s share of the next global batch.</summary>
    public long Start(int rank) => Cursor + (long)rank * train.BatchSize;

    public void Advance() => Cursor += Global;

    public void WrapIfEpochEnded()
    {
        if (Cursor + Global <= samples) return;
        TrainingEpoch++;
        Cursor = 0;
    }

    public bool Done(long step) => train.Steps > 0 ? step >= train.Steps : TrainingEpoch >= train.Epochs;

    /// <summary>The job's length in steps at the current world size (exact when the spec gives steps).</summary>
    public long TotalSteps(long step) => train.Steps > 0 ? train.Steps : step + (train.Epochs - TrainingEpoch) * TrainingPlan.StepsPerEpochFor(samples, Global) - Cursor / Global;

    public void Write(BinaryWriter w)
    {
        w.Write(TrainingEpoch);
        w.Write(Cursor);
    }

    public void Read(BinaryReader r)
    {
        TrainingEpoch = r.ReadInt32();
        Cursor = r.ReadInt64();
    }
}
