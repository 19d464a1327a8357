using Orchestrator.Core.Collectives;

namespace Orchestrator.Worker.Training;

/// <summary>
/// One rank of a data-parallel job, as <see cref="RankRunner"/> drives it: it trains in a membership epoch, and at
/// the start of every membership epoch agrees with the other ranks on the state to continue from, so that any survivor can
/// hand the whole training state on.
/// </summary>
public interface IGangRank : IDisposable
{
    /// <summary>Completed steps.</summary>
    long Step { get; }

    /// <summary>Passes over the training data completed.</summary>
    int TrainingEpoch { get; }

    bool Done { get; }

    /// <summary>The job's length in steps at the current world size.</summary>
    long TotalSteps { get; }

    /// <summary>Seconds spent so far computing, combining with the other ranks, and applying the step.</summary>
    (double Compute, double Combine, double Optimizer) Time { get; }

    /// <summary>Takes part in a (new) membership epoch as rank <paramref name="rank"/> of <paramref name="world"/>.</summary>
    void Join(Collective collective, int rank, int world);

    /// <summary>Run by every rank before training in a membership epoch; returns the rank whose state was taken, or -1.</summary>
    Task<int> AgreeOnState(bool joining, CancellationToken ct = default);

    /// <summary>One synchronous step; returns this rank's loss on its share.</summary>
    Task<float> TrainStep(CancellationToken ct = default);

    /// <summary>Called on every rank at a training epoch's end; the test metrics, or null on a rank that does not report them.</summary>
    Task<TestMetrics?> Evaluate(CancellationToken ct = default);

    /// <summary>Chaos testing: this rank's next step sends non-finite gradients.</summary>
    void PoisonNextStep();

    /// <summary>The ranks whose gradients were not finite in the last step, which every rank then skipped (the batch is
    /// dropped, nothing is updated); empty when the step was applied.</summary>
    IReadOnlyList<int> NonFiniteRanks { get; }

    /// <summary>The state a joiner or a checkpoint needs (parameters, optimizer state, data position).</summary>
    byte[] CaptureState();

    void RestoreState(byte[] state);
}
