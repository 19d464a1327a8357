namespace Orchestrator.Grains;

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

    /// <summary>Cancels a job that has not ended; a running worker stops at its next report.</summary>
    [Alias("cancel")] Task<JobInfo> Cancel(string who);

    // Scheduler side.
    /// <summary>Accepts a placement if the job is waiting and the epoch is new; false otherwise (the caller must not assign it).</summary>
    [Alias("scheduled")] Task<bool> MarkScheduled(Assignment assignment);

    /// <summary>The node could not take an accepted placement: back to waiting. Returns the queue entry, or null if stale.</summary>
    [Alias("unschedule")] Task<QueuedJob?> Unschedule(long epoch, string reason);
    /// <summary>The job's node died: the job becomes Recovering; returns its queue entry, or null if the epoch is stale.</summary>
    [Alias("lost")] Task<QueuedJob?> MarkLost(long epoch, string reason);

    // Worker side: every call carries the assignment epoch and is refused when it is stale.
    [Alias("start")] Task<StartReply> Start(long epoch, string nodeId);
    [Alias("progress")] Task<WorkAck> ReportProgress(long epoch, JobProgress progress);
    [Alias("checkpoint")] Task<WorkAck> SaveCheckpoint(long epoch, JobCheckpoint checkpoint);
    [Alias("complete")] Task<WorkAck> Complete(long epoch, JobResult result);
    [Alias("fail")] Task<WorkAck> Fail(long epoch, string reason);
}
