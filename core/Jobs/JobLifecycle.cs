namespace Orchestrator.Core.Jobs;

/// <summary>Job life cycle. Recovering: the job lost its node or gang and waits to be placed again. Unschedulable:
/// it waits, but the cluster as it is could never run it (too few devices, or none large enough); it waits again
/// once the cluster can.</summary>
public enum JobState { Pending, Scheduled, Running, Recovering, Succeeded, Failed, Cancelled, Unschedulable }

/// <summary>What moves a job from one state to another.</summary>
public enum JobTrigger
{
    /// <summary>The scheduler placed it (a single job on a device, or a whole gang).</summary>
    Placed,
    /// <summary>Its worker started it, or its gang formed.</summary>
    Started,
    /// <summary>Its node could not take the placement.</summary>
    PlacementNotTaken,
    /// <summary>It lost its node, or a data-parallel job lost its whole gang.</summary>
    Lost,
    /// <summary>Preempted: its worker handed a checkpoint back.</summary>
    Yielded,
    /// <summary>The scheduler found that the cluster as it is cannot run it.</summary>
    FoundUnschedulable,
    /// <summary>The cluster can run it again.</summary>
    FoundSchedulable,
    Succeeded,
    Failed,
    Cancelled,
}

/// <summary>Why the cluster refuses a worker's call for a job, or tells it to stop.</summary>
public enum StopCause
{
    NoSuchJob,
    Cancelled,
    Ended,
    /// <summary>A newer assignment took the job over (fencing).</summary>
    StaleAssignment,
    /// <summary>The rank was removed from its data-parallel job, or the job was placed again.</summary>
    NotARank,
    /// <summary>A gang of higher priority needs the device: checkpoint and leave.</summary>
    Preempted,
    /// <summary>The call does not fit the job's kind (a rank of a data-parallel job starts with JoinGang).</summary>
    WrongKind,
}

/// <summary>
/// The rules of a job's life, without storage or messages: which triggers apply in which state and where they
/// lead, and who may still act for the job (fencing). The job grain persists the state and drives these rules.
/// <code>
/// Pending ──Placed──▶ Scheduled ──Started──▶ Running ──Succeeded/Failed──▶ (ended)
///    ▲                 │  │                    │
///    └─PlacementNotTaken┘  └──────Lost─────────┴──▶ Recovering ──Placed──▶ Scheduled …
/// Yielded (preempted) goes back to Pending (Recovering once it has recovered); Cancelled from any state that has not ended.
/// A waiting job the cluster cannot run becomes Unschedulable, and waits again (Pending or Recovering) once it can.
/// </code>
/// </summary>
public static class JobLifecycle
{
    public static bool IsTerminal(this JobState s) => s is JobState.Succeeded or JobState.Failed or JobState.Cancelled;

    /// <summary>Waiting to be placed (an unschedulable job stays queued, to be placed once the cluster can run it).</summary>
    public static bool IsQueued(this JobState s) => s is JobState.Pending or JobState.Recovering or JobState.Unschedulable;

    /// <summary>The state <paramref name="trigger"/> leads to from <paramref name="state"/>, or null when it does not apply there.
    /// <paramref name="hasRecovered"/>: the job has been lost before, so it waits as Recovering rather than Pending.</summary>
    public static JobState? Next(JobState state, JobTrigger trigger, bool hasRecovered) => (state, trigger) switch
    {
        (JobState.Pending or JobState.Recovering or JobState.Unschedulable, JobTrigger.Placed) => JobState.Scheduled,
        (JobState.Pending or JobState.Recovering, JobTrigger.FoundUnschedulable) => JobState.Unschedulable,
        (JobState.Unschedulable, JobTrigger.FoundSchedulable) => Waiting(hasRecovered),
        (JobState.Scheduled, JobTrigger.Started) => JobState.Running,
        (JobState.Scheduled, JobTrigger.PlacementNotTaken) => Waiting(hasRecovered),
        (JobState.Scheduled or JobState.Running, JobTrigger.Lost) => JobState.Recovering,
        (JobState.Scheduled or JobState.Running, JobTrigger.Yielded) => Waiting(hasRecovered),
        (JobState.Scheduled or JobState.Running, JobTrigger.Succeeded) => JobState.Succeeded,
        (JobState.Scheduled or JobState.Running, JobTrigger.Failed) => JobState.Failed,
        (_, JobTrigger.Cancelled) when !state.IsTerminal() => JobState.Cancelled,
        _ => null,
    };

    /// <summary>Applies a trigger the caller has checked; an impossible one is a bug and throws.</summary>
    public static JobState Apply(JobState state, JobTrigger trigger, bool hasRecovered) =>
        Next(state, trigger, hasRecovered) ?? throw new InvalidOperationException($"a {state} job cannot take {trigger}");

    static JobState Waiting(bool hasRecovered) => hasRecovered ? JobState.Recovering : JobState.Pending;

    /// <summary>
    /// Fencing: only the holder of the job's current assignment may act for it. Null when the caller may act;
    /// otherwise why not. <paramref name="current"/>: the caller's assignment epoch is the job's (or one of its ranks').
    /// </summary>
    public static StopCause? Refusal(bool exists, JobState state, bool current, bool dataParallel) =>
        !exists ? StopCause.NoSuchJob
        : state == JobState.Cancelled ? StopCause.Cancelled
        : state.IsTerminal() ? StopCause.Ended
        : current ? null
        : dataParallel ? StopCause.NotARank
        : StopCause.StaleAssignment;
}
