namespace Orchestrator.Contracts;

/// <summary>
/// One job (key: job id): its state machine Pending → Scheduled → Running → Succeeded | Failed | Cancelled
/// (Recovering after losing its node), progress, events, checkpoint and result. Persisted.
/// </summary>
[Alias("job")]
public interface IJobGrain : IGrainWithStringKey
{
    /// <summary>Validates and accepts a job. Idempotent: the same submission twice returns the same job.</summary>
    [Alias("submit")] Task<JobInfo> Submit(JobSubmission submission);

    [Alias("info")] Task<JobInfo> GetInfo();

    /// <summary>The job's queue entry while it waits (Pending or Recovering), else null.</summary>
    [Alias("queue-entry")] Task<QueuedJob?> GetQueueEntry();

    [Alias("events")] Task<IReadOnlyList<JobEvent>> GetEvents();

    /// <summary>The job's phase marks and training curve.</summary>
    [Alias("history")] Task<JobHistory> GetHistory();

    /// <summary>Records something that happened to the job elsewhere (a shard rebuilt after its silo died, a rollback).</summary>
    [Alias("note"), Orleans.Concurrency.OneWay] Task Note(JobEvent happened);

    /// <summary>Cancels a job that has not ended; a running worker stops at its next report.</summary>
    [Alias("cancel")] Task<JobInfo> Cancel(string who);

    /// <summary>Deletes a job that has ended: its state, its checkpoint references (the workers' cleanup then removes
    /// its checkpoints) and its entry in the index. A job that has not ended is refused: cancel it first.</summary>
    [Alias("delete")] Task Delete();

    // Scheduler side.
    /// <summary>Accepts a placement if the job is waiting and the assignment epoch is new; false otherwise (the caller must not assign it).</summary>
    [Alias("scheduled")] Task<bool> MarkScheduled(Assignment assignment);

    /// <summary>
    /// Accepts the ranks of a data-parallel job: all of them or none. A waiting job takes at least its minimum (it
    /// forms once every rank has joined); a running job below its maximum takes them as joiners (growth).
    /// </summary>
    [Alias("gang-scheduled")] Task<bool> MarkGangScheduled(IReadOnlyList<Assignment> ranks);

    /// <summary>
    /// Asks a running single job or fused-array member to checkpoint and go back to the queue (a gang of higher
    /// priority needs its device): its worker is told at its next report and calls <see cref="Yield"/>.
    /// </summary>
    [Alias("preempt")] Task Preempt(string forJob);

    /// <summary>The scheduler found that the cluster as it is cannot run the waiting job (it stays queued).</summary>
    [Alias("unschedulable")] Task MarkUnschedulable(Unschedulable why);
    /// <summary>The cluster can run the job again: it waits as before.</summary>
    [Alias("schedulable")] Task MarkSchedulable();

    /// <summary>The node could not take an accepted placement: back to waiting. Returns the queue entry, or null if stale.</summary>
    [Alias("unschedule")] Task<QueuedJob?> Unschedule(long assignmentEpoch);
    /// <summary>The job's node sent no heartbeat for <paramref name="timeout"/>: the job becomes Recovering; returns its
    /// queue entry, or null if the assignment epoch is stale.</summary>
    [Alias("lost")] Task<QueuedJob?> MarkLost(long assignmentEpoch, TimeSpan timeout);

    // Worker side: every call carries the assignment epoch and is refused when it is stale.
    [Alias("start")] Task<StartReply> Start(long assignmentEpoch, string nodeId);
    /// <summary>Progress and checkpoints are reported from a loop that sends the latest again if one is lost.</summary>
    [Alias("progress"), NotRetried] Task<WorkAck> ReportProgress(long assignmentEpoch, JobProgress progress);
    /// <summary>A checkpoint is in the checkpoint store: the job keeps its reference (and the newest few before it).</summary>
    [Alias("checkpoint"), NotRetried] Task<WorkAck> SaveCheckpoint(long assignmentEpoch, CheckpointRef checkpoint);
    [Alias("complete")] Task<WorkAck> Complete(long assignmentEpoch, JobResult result);
    [Alias("fail")] Task<WorkAck> Fail(long assignmentEpoch, JobFailure failure);
    /// <summary>A preempted job's worker hands back its latest state (null: it could not store one, the job resumes from
    /// its last checkpoint) and leaves; the job waits to be placed again.</summary>
    [Alias("yield")] Task<WorkAck> Yield(long assignmentEpoch, CheckpointRef? checkpoint);

    /// <summary>For the checkpoint store's cleanup: what the job keeps there (nothing, if the job does not exist).</summary>
    [Alias("checkpoints")] Task<CheckpointHolding> GetCheckpoints();

    // Ranks of a data-parallel job (the job grain is their rendezvous), each known by its assignment epoch.
    /// <summary>A rank's data-plane endpoint is up: it joins when the gang forms, or at the next step boundary.</summary>
    [Alias("join-gang")] Task<StartReply> JoinGang(long assignmentEpoch, string nodeId, string endpoint);
    /// <summary>A step boundary (<paramref name="completedSteps"/> done): admits waiting ranks; returns the membership.</summary>
    [Alias("sync-gang")] Task<GangView> SyncGang(long assignmentEpoch, long completedSteps);
    /// <summary>
    /// A rank lost contact with rank <paramref name="suspect"/> (an assignment epoch) in membership epoch
    /// <paramref name="membershipEpoch"/>, as <paramref name="failure"/> (with the transport's words in
    /// <paramref name="detail"/>). The grain removes the suspect if its process is gone, re-forms the same ranks if it
    /// is alive, or asks the reporter to ask again shortly (the view is then unchanged).
    /// </summary>
    [Alias("peer-failed")] Task<GangView> ReportPeerFailure(long assignmentEpoch, long membershipEpoch, long suspect, long step, Orchestrator.Core.Reliability.PeerFailure failure, string detail);
}
