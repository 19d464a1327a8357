using Orchestrator.Core.Reliability;

namespace Orchestrator.Contracts;

/// <param name="SpecJson">The canonical spec (see Orchestrator.Core.Specs.JobSpecJson); validated again by the grain.</param>
/// <param name="DeferEnqueue">Leave queueing to the caller, who enqueues a batch at once (see
/// <see cref="ISchedulerGrain.EnqueueMany"/>) so that a sweep's jobs can be packed into one fused array.</param>
/// <param name="SubmissionId">Names this submission (a fresh GUID per job the caller means to create): a retry with the
/// same one is answered with the job it created, while another submission that drew the same job id is refused
/// (<see cref="JobIdTakenException"/>) instead of silently getting someone else's job. Without it, the same spec
/// under the same id counts as the same submission.</param>
[GenerateSerializer, Immutable, Alias("job-submission")]
public sealed record JobSubmission(string SpecJson, string SubmittedBy, bool DeferEnqueue = false, string? SubmissionId = null);

/// <summary>The job id is taken by another submission: submit under another id.</summary>
[GenerateSerializer, Alias("job-id-taken")]
public sealed class JobIdTakenException(string message) : ArgumentException(message);

/// <summary>
/// One placement of a job on a device. <see cref="AssignmentEpoch"/> is a cluster-wide fencing token: it grows with every
/// placement, and a worker holding an older assignment epoch than the job's current one is refused everywhere.
/// Jobs placed together on one device form a fused array (<see cref="ArrayId"/>, <see cref="ArrayWidth"/>
/// members when placed); a job alone is an array of width 1. A data-parallel job has one assignment per rank
/// (<see cref="Gang"/>), each with its own assignment epoch (which identifies the rank in the membership) and array id.
/// </summary>
[GenerateSerializer, Immutable, Alias("assignment")]
public sealed record Assignment(string JobId, string NodeId, string Device, long AssignmentEpoch, DateTime AssignedAt, string ArrayId, int ArrayWidth,
    bool Gang = false, int Priority = 0);

/// <param name="TrainingEpoch">Passes over the training data completed.</param>
[GenerateSerializer, Immutable, Alias("job-progress")]
public sealed record JobProgress(long Step, long TotalSteps, int TrainingEpoch, double Loss, double? TestAccuracy, double SamplesPerSecond, DateTime At);

/// <summary>Why the cluster as it is cannot run a job: the cause, what the job needs and the most the cluster has
/// (devices, or bytes), and where that most is.</summary>
[GenerateSerializer, Immutable, Alias("unschedulable")]
public sealed record Unschedulable(Orchestrator.Core.Scheduling.UnschedulableCause Cause, long Needed, long Available, string? Where)
{
    public static Unschedulable From(Orchestrator.Core.Scheduling.AdmissionRefusal r) => new(r.Cause, r.Needed, r.Available, r.Where);

    public string Message => new Orchestrator.Core.Scheduling.AdmissionRefusal(Cause, Needed, Available, Where).Message;
}

/// <summary>Why a job failed: a cause (an enum programs read), the step it failed at where known, and words for people.</summary>
[GenerateSerializer, Immutable, Alias("job-failure")]
public sealed record JobFailure(FailureCause Cause, string Detail, long? Step = null)
{
    public FailureCategory Category => FailureTaxonomy.CategoryOf(Cause);
    public string Message => Cause switch
    {
        FailureCause.NonFiniteLoss => $"non-finite loss at step {Step}: {Detail}",
        FailureCause.NonFiniteGradients => $"non-finite gradients: {Detail}",
        FailureCause.InvalidData => $"invalid data: {Detail}",
        FailureCause.InvalidSpec => $"invalid job spec: {Detail}",
        FailureCause.OutOfMemory => $"out of memory on the worker: {Detail}",
        FailureCause.EmbeddingLost => $"embedding lost: {Detail}",
        _ => Detail,
    };
}

/// <summary>A refusal or stop order: its cause, and words for the worker's log.</summary>
[GenerateSerializer, Immutable, Alias("refusal")]
public sealed record Refusal(StopCause Cause, string Message);

/// <param name="TrainingSeconds">Wall time of the run that finished the job, evaluations included.</param>
/// <param name="SamplesPerSecond">The job's own training throughput in that run, test-set evaluations excluded.</param>
/// <param name="Split">Data-parallel jobs: rank 0's mean time per step in forward/backward, combining gradients
/// over the data plane, and the optimizer, in milliseconds.</param>
/// <param name="Auc">Recommendation jobs: area under the ROC curve on the held-out examples (with <paramref name="LogLoss"/>).</param>
/// <param name="LongestStepSeconds">The longest single training step of the run, i.e. the longest stall
/// (waiting for a shard to come back after its silo died shows here).</param>
[GenerateSerializer, Immutable, Alias("job-result")]
public sealed record JobResult(double TestAccuracy, double FinalLoss, long Steps, int TrainingEpochs, double TrainingSeconds, double SamplesPerSecond,
    StepSplit? Split = null, double? Auc = null, double? LogLoss = null, double? LongestStepSeconds = null);

[GenerateSerializer, Immutable, Alias("step-split")]
public sealed record StepSplit(double ComputeMs, double CombineMs, double OptimizerMs)
{
    public override string ToString() => $"per step: compute {ComputeMs:F2} ms, combine {CombineMs:F2} ms, optimizer {OptimizerMs:F2} ms";
}

/// <summary>
/// A checkpoint of the job at <see cref="Step"/> in the checkpoint store (model and optimizer state in the worker's
/// format): its key in the store, size and SHA-256, which a reader verifies. Only this reference crosses the control
/// plane; the bytes go from worker to store and back.
/// </summary>
[GenerateSerializer, Immutable, Alias("checkpoint-ref")]
public sealed record CheckpointRef(long Step, string Key, long Bytes, string Sha256, DateTime At);

/// <summary>What a job holds in the checkpoint store, for retention: whether it exists, its state, when it ended, and
/// the checkpoints it keeps (newest first).</summary>
[GenerateSerializer, Immutable, Alias("checkpoint-holding")]
public sealed record CheckpointHolding(bool Exists, JobState State, DateTime? EndedAt, IReadOnlyList<CheckpointRef> Kept);

/// <param name="HostSilo">The silo whose activation of the job grain answered (Orleans' parsable silo address).</param>
[GenerateSerializer, Immutable, Alias("job-info")]
public sealed record JobInfo(
    string JobId,
    string Name,
    string Owner,
    JobState State,
    int Priority,
    string Model,
    DateTime SubmittedAt,
    DateTime? StartedAt,
    DateTime? EndedAt,
    Assignment? Assignment,
    JobProgress? Progress,
    JobResult? Result,
    JobFailure? Failure,
    long? CheckpointStep,
    int Recoveries,
    string? HostSilo,
    GangView? Gang = null,
    IReadOnlyList<Assignment>? Ranks = null,
    ShardConfig? Shards = null,
    JobTime? Time = null,
    Unschedulable? Unschedulable = null);

/// <summary>A worker's answer for starting an assignment: the spec, and where to resume from (for a rank of a
/// data-parallel job, also the membership it is in or waits to join).</summary>
[GenerateSerializer, Immutable, Alias("start-reply")]
/// <param name="Checkpoints">The checkpoints to resume from, newest first (a worker falls back to an older one if the
/// newest cannot be read); empty to start afresh.</param>
public sealed record StartReply(Refusal? Refused, string SpecJson, IReadOnlyList<CheckpointRef> Checkpoints, GangView? Gang = null, ShardConfig? Shards = null)
{
    public bool Accepted => Refused is null;
    public static StartReply Refuse(Refusal why) => new(why, "", []);
}

/// <summary>
/// A data-parallel job's membership as its ranks see it: rank r is the assignment with assignment epoch
/// <c>Ranks[r]</c>, listening at <c>Endpoints[r]</c>. <see cref="Step"/> is the latest step boundary the
/// membership knows. <see cref="CanTrain"/> is false while the job has fewer ranks than its minimum (or has
/// not formed yet). <see cref="Stop"/> is set when the asking rank must stop (removed, job ended).
/// <see cref="Waiting"/> counts placed ranks not in the membership yet.
/// </summary>
[GenerateSerializer, Immutable, Alias("gang-view")]
public sealed record GangView(long MembershipEpoch, IReadOnlyList<long> Ranks, IReadOnlyList<string> Endpoints, long Step, bool CanTrain,
    int Waiting, Refusal? Stop = null)
{
    public int RankOf(long assignmentEpoch)
    {
        for (int r = 0; r < Ranks.Count; r++) if (Ranks[r] == assignmentEpoch) return r;
        return -1;
    }
}

/// <summary>The reply to every worker report: go on, or stop (cancelled, or the assignment is no longer current).
/// <see cref="Yield"/>: stop after handing a checkpoint back (<see cref="IJobGrain.Yield"/>), for preemption.</summary>
[GenerateSerializer, Immutable, Alias("work-ack")]
public sealed record WorkAck(Refusal? Stop = null, bool Yield = false)
{
    public bool Continue => Stop is null;
    public static readonly WorkAck Go = new();
}

/// <summary>From <see cref="At"/> the job is in <see cref="Phase"/> (see <see cref="Orchestrator.Core.Reliability.PhaseMark"/>).</summary>
[GenerateSerializer, Immutable, Alias("job-mark")]
public sealed record JobMark(DateTime At, Orchestrator.Core.Reliability.RunPhase Phase, long Step)
{
    public Orchestrator.Core.Reliability.PhaseMark ToPhaseMark() => new(At, Phase, Step);
}

/// <summary>A job's time line (its phase marks, the source of its ETTR) and its training curve (progress reports,
/// thinned to at most a few hundred points over the whole run).</summary>
[GenerateSerializer, Immutable, Alias("job-history")]
public sealed record JobHistory(IReadOnlyList<JobMark> Marks, IReadOnlyList<JobProgress> Curve);

/// <summary>The job's wall time split as the reliability study does (seconds); see <see cref="Orchestrator.Core.Reliability.TimeAccount"/>.</summary>
[GenerateSerializer, Immutable, Alias("job-time")]
public sealed record JobTime(double WallSeconds, double ProductiveSeconds, double QueueingSeconds, double StartingSeconds, double DetectionSeconds,
    double RecoverySeconds, double LostProgressSeconds, long LostSteps, double Ettr)
{
    public static JobTime From(Orchestrator.Core.Reliability.TimeAccount a) => new(a.Wall.TotalSeconds, a.Productive.TotalSeconds,
        a.Queueing.TotalSeconds, a.Starting.TotalSeconds, a.Detection.TotalSeconds, a.Recovery.TotalSeconds, a.LostProgress.TotalSeconds, a.LostSteps, a.Ettr);
}
