namespace Orchestrator.Worker;

/// <summary>What the worker logs, as source-generated methods; event ids by area (node agent 1xx, jobs 2xx, data-parallel
/// ranks 3xx, chaos 4xx).</summary>
static partial class WorkerLog
{
    [LoggerMessage(101, LogLevel.Information, "Node {Node} up with devices {Devices}")] public static partial void NodeUp(this ILogger logger, string node, string devices);
    [LoggerMessage(102, LogLevel.Warning, "Node {Node}: {What}; training goes on")] public static partial void Reachability(this ILogger logger, string node, string what);
    [LoggerMessage(103, LogLevel.Warning, "Node {Node}: {Why}; stopping local work")] public static partial void LeaseExpired(this ILogger logger, string node, string why);
    [LoggerMessage(104, LogLevel.Information, "Node {Node}: starting rank {Rank} of data-parallel job {Job} on {Device}")] public static partial void StartingRank(this ILogger logger, string node, string rank, string job, string device);
    [LoggerMessage(105, LogLevel.Information, "Node {Node}: starting {Array} ({Width} job(s): {Jobs}) on {Device}")] public static partial void StartingArray(this ILogger logger, string node, string array, int width, string jobs, string device);
    [LoggerMessage(106, LogLevel.Critical, "Node agent stopped unexpectedly")] public static partial void AgentStopped(this ILogger logger, Exception error);
    [LoggerMessage(107, LogLevel.Warning, "Cluster not reachable yet ({Error}); retrying")] public static partial void NotReachableYet(this ILogger logger, string error);
    [LoggerMessage(201, LogLevel.Information, "Job {Job} assignment epoch {AssignmentEpoch} refused ({Cause}): {Reason}")] public static partial void AssignmentRefused(this ILogger logger, string job, long assignmentEpoch, StopCause cause, string reason);
    [LoggerMessage(202, LogLevel.Warning, "Job {Job}: could not start")] public static partial void NotStarted(this ILogger logger, string job, Exception error);
    [LoggerMessage(203, LogLevel.Warning, "Job {Job}: report not delivered ({Error}: {Message}); training continues")] public static partial void ReportNotDelivered(this ILogger logger, string job, string error, string message);
    [LoggerMessage(204, LogLevel.Information, "Job {Job} succeeded: accuracy {Accuracy:F4}")] public static partial void JobSucceeded(this ILogger logger, string job, double accuracy);
    [LoggerMessage(205, LogLevel.Warning, "Job {Job} failed ({Cause}): {Reason}")] public static partial void JobFailed(this ILogger logger, string job, FailureCause cause, string reason);
    [LoggerMessage(206, LogLevel.Information, "Job {Job} yielded its device at step {Step}: {Reason}")] public static partial void JobYielded(this ILogger logger, string job, long step, string reason);
    [LoggerMessage(207, LogLevel.Information, "Job {Job} stopped on this node: {Reason}")] public static partial void JobStopped(this ILogger logger, string job, string? reason);
    [LoggerMessage(208, LogLevel.Error, "Job {Job}: could not report its outcome")] public static partial void OutcomeNotReported(this ILogger logger, string job, Exception error);
    [LoggerMessage(209, LogLevel.Error, "Array {Array}: its runner ended unexpectedly; the next reconcile runs its members again")] public static partial void ArrayRunnerEnded(this ILogger logger, string array, Exception error);
    [LoggerMessage(210, LogLevel.Error, "Array {Array} failed")] public static partial void ArrayFailed(this ILogger logger, string array, Exception error);
    [LoggerMessage(301, LogLevel.Error, "Job {Job} rank {AssignmentEpoch}: the rank runner ended unexpectedly; the next reconcile runs it again")] public static partial void RankRunnerEnded(this ILogger logger, string job, long assignmentEpoch, Exception error);
    [LoggerMessage(302, LogLevel.Warning, "Job {Job} rank {AssignmentEpoch}: could not join ({Error}); the next reconcile tries again")] public static partial void RankNotJoined(this ILogger logger, string job, long assignmentEpoch, string error);
    [LoggerMessage(303, LogLevel.Information, "Job {Job}: rank {AssignmentEpoch} on {Device} serving its data plane at {Endpoint}")] public static partial void RankServing(this ILogger logger, string job, long assignmentEpoch, string device, string endpoint);
    [LoggerMessage(304, LogLevel.Error, "Job {Job} rank {AssignmentEpoch} failed")] public static partial void RankFailed(this ILogger logger, string job, long assignmentEpoch, Exception error);
    [LoggerMessage(305, LogLevel.Information, "Job {Job}: rank {Rank} took the state at step {Step} from rank {Root}")] public static partial void StateTaken(this ILogger logger, string job, int rank, long step, int root);
    [LoggerMessage(306, LogLevel.Warning, "Job {Job}: rank {Rank} lost rank {Peer} ({Failure}) in membership epoch {MembershipEpoch} at step {Step}: {Error}")] public static partial void PeerLost(this ILogger logger, string job, int rank, int peer, PeerFailure failure, long membershipEpoch, long step, string error);
    [LoggerMessage(211, LogLevel.Information, "Job {Job}: checkpoint of step {Step} stored ({Bytes} bytes, {MegabytesPerSecond:F0} MB/s)")] public static partial void CheckpointWritten(this ILogger logger, string job, long step, long bytes, double megabytesPerSecond);
    [LoggerMessage(212, LogLevel.Error, "Job {Job}: checkpoint of step {Step} could not be written to the {Store}; training goes on, the next checkpoint tries again")] public static partial void CheckpointNotWritten(this ILogger logger, string job, long step, string store, Exception error);
    [LoggerMessage(213, LogLevel.Warning, "Job {Job}: checkpoint of step {Step} is unreadable: {Problem}")] public static partial void CheckpointUnreadable(this ILogger logger, string job, long step, string problem);
    [LoggerMessage(214, LogLevel.Warning, "Job {Job}: resuming from the checkpoint of step {Step}, an older one than the newest (step {Newest}), which could not be read")] public static partial void CheckpointFallback(this ILogger logger, string job, long step, long newest);
    [LoggerMessage(215, LogLevel.Information, "Checkpoint store: removed {Files} file(s) ({Bytes} bytes) of job {Job}: {Why}")] public static partial void CheckpointsRemoved(this ILogger logger, string job, int files, long bytes, string why);
    [LoggerMessage(216, LogLevel.Warning, "Checkpoint store: cleanup of job {Job} failed")] public static partial void CheckpointCleanupFailed(this ILogger logger, string job, Exception error);
    [LoggerMessage(401, LogLevel.Warning, "Chaos: {Kind} ({Fault})")] public static partial void ChaosFault(this ILogger logger, FaultKind kind, string fault);
    [LoggerMessage(402, LogLevel.Warning, "Chaos: refused {Fault}: {Why}")] public static partial void ChaosRefused(this ILogger logger, string fault, string why);
    [LoggerMessage(403, LogLevel.Error, "Chaos: could not apply {Fault}")] public static partial void ChaosNotApplied(this ILogger logger, string fault, Exception error);
}
