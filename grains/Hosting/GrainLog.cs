namespace Orchestrator.Grains;

/// <summary>What the grains log, as source-generated methods; event ids by area (jobs 1xx, scheduling 2xx, nodes 3xx,
/// reliability 4xx, chaos 5xx, shards 6xx).</summary>
static partial class GrainLog
{
    [LoggerMessage(101, LogLevel.Warning, "Job {JobId} recovered from storage after silo {Silo} was lost")] public static partial void JobRecoveredFromStorage(this ILogger logger, string jobId, string silo);
    [LoggerMessage(201, LogLevel.Information, "Scheduler reconciled with the job index: {Removed} stale entries removed, {Added} waiting jobs re-queued")] public static partial void SchedulerReconciled(this ILogger logger, int removed, int added);
    [LoggerMessage(203, LogLevel.Warning, "Job {Job} is unschedulable: it {Why}")] public static partial void Unschedulable(this ILogger logger, string job, string why);
    [LoggerMessage(202, LogLevel.Debug, "Scheduler tick failed; retrying next period")] public static partial void SchedulerTickFailed(this ILogger logger, Exception error);
    [LoggerMessage(301, LogLevel.Information, "Node {Node} is back (incarnation {Incarnation})")] public static partial void NodeBack(this ILogger logger, string node, string incarnation);
    [LoggerMessage(302, LogLevel.Warning, "Node {Node} missed heartbeats for {TimeoutSeconds} s; declared dead, {Count} assignments to reschedule")] public static partial void NodeDeclaredDead(this ILogger logger, string node, double timeoutSeconds, int count);
    [LoggerMessage(401, LogLevel.Warning, "Incident kept in memory, not yet persisted: {Error}")] public static partial void IncidentNotPersisted(this ILogger logger, string error);
    [LoggerMessage(402, LogLevel.Warning, "Could not record a {Kind} incident: {Error}")] public static partial void IncidentNotRecorded(this ILogger logger, IncidentKind kind, string error);
    [LoggerMessage(403, LogLevel.Information, "Silo(s) {Joined} joined: {Count} shard(s) moved to restore their coding groups' protection")] public static partial void ProtectionRestored(this ILogger logger, string joined, int count);
    [LoggerMessage(404, LogLevel.Warning, "Could not restore coding groups' protection after silo(s) {Joined} joined: {Error}")] public static partial void ProtectionNotRestored(this ILogger logger, string joined, string error);
    [LoggerMessage(501, LogLevel.Warning, "Chaos: silo {Silo} (process {Pid}) crashes now")] public static partial void ChaosSiloCrash(this ILogger logger, string silo, int pid);
    [LoggerMessage(502, LogLevel.Warning, "Chaos: {Fault} for node {Node}")] public static partial void ChaosNodeFault(this ILogger logger, FaultKind fault, string node);
    [LoggerMessage(601, LogLevel.Warning, "Shard {Shard} rebuilt on {Silo} at step {Step} in {Milliseconds:F1} ms from {Bytes} bytes of its group")] public static partial void ShardRebuilt(this ILogger logger, string shard, string silo, long step, double milliseconds, long bytes);
    [LoggerMessage(602, LogLevel.Warning, "Shard {Shard} restored on {Silo} from its checkpoint at step {Step}")] public static partial void ShardRestored(this ILogger logger, string shard, string silo, long step);
    [LoggerMessage(603, LogLevel.Warning, "Parity shard {Shard} rebuilt on {Silo} in {Milliseconds:F1} ms from {Bytes} bytes of its group")] public static partial void ParityRebuilt(this ILogger logger, string shard, string silo, double milliseconds, long bytes);
    [LoggerMessage(604, LogLevel.Warning, "Coding group {Group}: only {Live} live silos for its shards; member {Member} shares silo {Silo} with a sibling (less protection until a silo joins)")] public static partial void MemberSharesSilo(this ILogger logger, string group, int live, int member, string silo);
    [LoggerMessage(605, LogLevel.Warning, "Coding group {Group}: member {Member} did not come up on silo {To} within {LimitSeconds} s (it is on {At})")] public static partial void MemberNotMoved(this ILogger logger, string group, int member, string to, double limitSeconds, string at);
    [LoggerMessage(606, LogLevel.Information, "Coding group {Group}: {What}")] public static partial void MemberMoved(this ILogger logger, string group, string what);
}
