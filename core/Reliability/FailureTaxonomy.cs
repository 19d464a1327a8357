namespace Orchestrator.Core.Reliability;

/// <summary>
/// What failed, after the taxonomy of Meta's study of two large ML clusters ("Revisiting Reliability in Large-Scale
/// Machine Learning Research Clusters"): infrastructure failures by component, and the job's own causes apart.
/// </summary>
public enum FailureCategory
{
    NodeLost,
    SiloCrash,
    WorkerCrash,
    WorkerHang,
    NetworkTimeout,
    StateStoreOutage,
    OutOfMemory,
    UserError,
    Preemption,
    /// <summary>A checkpoint could not be written to or read back from the checkpoint store.</summary>
    CheckpointStore,
}

/// <summary>Why a job failed, as the worker that ran it knows it (each cause belongs to one <see cref="FailureCategory"/>).</summary>
public enum FailureCause
{
    /// <summary>The training loss became NaN or infinite (learning rate too high, bad data).</summary>
    NonFiniteLoss,
    /// <summary>A data-parallel rank sent non-finite gradients too many steps in a row.</summary>
    NonFiniteGradients,
    /// <summary>The data set is missing, truncated or malformed.</summary>
    InvalidData,
    /// <summary>The spec the worker received does not validate.</summary>
    InvalidSpec,
    OutOfMemory,
    /// <summary>An embedding shard was lost with its silo and its coding group could not rebuild it.</summary>
    EmbeddingLost,
    /// <summary>None of the job's checkpoints could be read back (missing from this node's store, or damaged).</summary>
    CheckpointUnreadable,
    /// <summary>Anything else the worker could not handle (a bug, or a fault the taxonomy has no name for).</summary>
    WorkerError,
}

/// <summary>How a data-parallel rank lost its peer on the data plane.</summary>
public enum PeerFailure
{
    /// <summary>The connection closed or a send failed: the peer's process is probably gone.</summary>
    ConnectionLost,
    /// <summary>Nothing arrived within the receive deadline: the peer (or the network) stalls.</summary>
    Silent,
    /// <summary>The peer could not be dialled, or never dialled in.</summary>
    Unreachable,
    /// <summary>The peer sent a frame of the wrong length.</summary>
    BadFrame,
}

/// <summary>Sorts causes into the study's taxonomy.</summary>
public static class FailureTaxonomy
{
    public static FailureCategory CategoryOf(FailureCause cause) => cause switch
    {
        FailureCause.NonFiniteLoss or FailureCause.NonFiniteGradients or FailureCause.InvalidData or FailureCause.InvalidSpec => FailureCategory.UserError,
        FailureCause.OutOfMemory => FailureCategory.OutOfMemory,
        FailureCause.EmbeddingLost => FailureCategory.SiloCrash,
        FailureCause.CheckpointUnreadable => FailureCategory.CheckpointStore,
        _ => FailureCategory.WorkerCrash,
    };

    /// <summary>A peer that stalls is a network timeout (or a hang); one whose connection died, a crashed worker.</summary>
    public static FailureCategory CategoryOf(PeerFailure failure) =>
        failure == PeerFailure.Silent ? FailureCategory.NetworkTimeout : FailureCategory.WorkerCrash;

    /// <summary>The job's own causes: it would fail the same way on a healthy cluster.</summary>
    public static bool IsJobsOwn(FailureCause cause) => CategoryOf(cause) == FailureCategory.UserError;
}
