using System.Globalization;
using Orchestrator.Core.Reliability;

namespace Orchestrator.Contracts;

/// <summary>Job events in words: the only place their sentences are made (from the events' fields).</summary>
public static class JobEventText
{
    public static string Render(JobEvent e) => e.Kind switch
    {
        JobEventKind.Submitted => Submitted(e.Summary),
        JobEventKind.EmbeddingPlanned => e.Embedding is { } c ? Embedding(c, e.LiveSilos ?? 0) : "embedding planned",
        JobEventKind.Placed => $"placed on {e.Node}/{e.Device}{(e.ArrayWidth > 1 ? $" in fused array {e.ArrayId} of {e.ArrayWidth} jobs" : "")} (assignment epoch {e.AssignmentEpoch}){Resume(e)}",
        JobEventKind.PlacementNotTaken => $"placement not taken: node {e.Node} could not take it on {e.Device}; requeued",
        JobEventKind.NodeLost => $"lost its node: node {e.Node} sent no heartbeat for {S(e.Seconds):0.#} s; requeued{Resume(e)}",
        JobEventKind.Started => e.ResumeStep > 0 ? $"started; resuming from checkpoint at step {e.ResumeStep}" : "started from step 0",
        JobEventKind.TrainingEpochCompleted => $"training epoch {e.TrainingEpoch} done at step {e.Step}: test accuracy {e.Accuracy:F4}, loss {e.Loss:F4}",
        JobEventKind.Succeeded => e.Result is { } r ? Succeeded(r) : "succeeded",
        JobEventKind.Failed => $"failed: {e.Failure?.Message}",
        JobEventKind.Cancelled => "cancelled",
        JobEventKind.Unschedulable => $"unschedulable: {e.Unschedulable?.Message}; it waits until the cluster can run it",
        JobEventKind.Schedulable => "the cluster can run it again: waiting for devices",
        JobEventKind.PreemptionRequested => $"preempted for data-parallel job {e.OtherJob} (higher priority): checkpointing, then back to the queue",
        JobEventKind.Preempted => $"preempted at step {e.Step}: checkpoint saved, requeued",
        JobEventKind.RecoveredFromStorage =>
            $"recovered from storage on silo {e.Silo} after silo {e.PreviousSilo} left the cluster; state {e.State}, last saved progress at step {e.Step}, " +
            $"checkpoint at step {e.ResumeStep?.ToString(CultureInfo.InvariantCulture) ?? "none"}",
        JobEventKind.GangPlaced => $"gang of {e.Ranks} placed: {Devices(e)}; it forms when every rank is up{Resume(e)}",
        JobEventKind.GangGrowing => $"growing: {e.Count} more rank(s) placed ({Devices(e)}); they join at the next step boundary",
        JobEventKind.GangFormed => $"gang formed: {e.Ranks} ranks (membership epoch {e.MembershipEpoch}), " +
                                   (e.ResumeStep > 0 ? $"resuming from the checkpoint at step {e.ResumeStep}" : "from step 0"),
        JobEventKind.RankUp => $"rank on {e.Node} is up and joins at the next step boundary",
        JobEventKind.RankRestarted => $"rank on {e.Node} came back with a new endpoint; it rejoins at the next step boundary",
        JobEventKind.RankJoinedAtOnce => $"rank on {e.Node} joined at once (the job was paused below its minimum); now {e.Ranks} ranks (membership epoch {e.MembershipEpoch})",
        JobEventKind.RanksJoined => $"{e.Count} rank(s) joined at step {e.Step}: {Devices(e)}; now {e.Ranks} ranks (membership epoch {e.MembershipEpoch}); " +
                                    "parameters and optimizer state broadcast to them",
        JobEventKind.RankRemoved => $"{Removed(e)}; {e.Ranks} rank(s) left (membership epoch {e.MembershipEpoch})",
        JobEventKind.MembershipReFormed => $"membership re-formed at step {e.Step} (membership epoch {e.MembershipEpoch}, same {e.Ranks} ranks): contact with " +
                                           $"rank {e.Rank} ({e.Node}/{e.Device}) was lost ({e.Detail}) but its process is alive",
        JobEventKind.GangPaused => $"paused: {e.Ranks} rank(s), fewer than the minimum {e.MinRanks}; waiting for a device",
        JobEventKind.GangRequeued => $"no gang left: requeued as a whole{Resume(e)}",
        JobEventKind.TrainingResumed => $"training goes on at step {e.Step} with {e.Ranks} ranks after a {S(e.Seconds):F1} s pause ({Pause(e.Pause)})",
        JobEventKind.ShardRebuilt => $"embedding shard {e.Shard} rebuilt on silo {e.Silo} at step {e.Step} in {S(e.Seconds) * 1000:F0} ms from {e.Bytes:N0} bytes " +
                                     "of its coding group; no other shard rolled back",
        JobEventKind.ParityRebuilt => $"parity shard {e.Shard} rebuilt on silo {e.Silo} in {S(e.Seconds) * 1000:F0} ms from {e.Bytes:N0} bytes of its coding group",
        JobEventKind.ShardMoved => $"coding group member {e.Shard} moved from silo {e.PreviousSilo} (shared with a sibling) to silo {e.Silo}, which joined; one member per silo again",
        JobEventKind.RolledBack => $"rolled back from step {e.Step} to the checkpoint at step {e.ResumeStep} in {S(e.Seconds) * 1000:F0} ms: " +
                                   $"{e.Step - e.ResumeStep} steps to train again ({e.Detail})",
        JobEventKind.NonFiniteStepSkipped => $"step {e.Step}: rank(s) {string.Join(", ", e.RankList ?? [])} sent non-finite gradients; every rank skipped the step, nothing was applied",
        JobEventKind.MalformedDataSkipped => $"skipped {e.Count} malformed lines of {e.Path}; the first: {e.Detail}",
        _ => e.Kind.ToString(),
    };

    static double S(double? seconds) => seconds ?? 0;

    static string Resume(JobEvent e) => e.ResumeStep is > 0 ? $"; will resume from checkpoint at step {e.ResumeStep}" : "";

    static string Devices(JobEvent e) => string.Join(", ", e.Devices ?? []);

    static string Submitted(JobSummary? s) => s is null ? "submitted" :
        $"submitted: {s.Model}, {s.Optimizer} lr {s.Lr.ToString(CultureInfo.InvariantCulture)}, priority {s.Priority}" +
        (s.MinRanks is { } min ? $", data-parallel on {min}-{s.MaxRanks} ranks combining gradients by {s.Combine}" : "");

    static string Succeeded(JobResult r) =>
        $"succeeded: test accuracy {r.TestAccuracy:F4} after {r.Steps} steps ({r.TrainingEpochs} training epochs, {r.TrainingSeconds:F1} s training)" +
        (r.Auc is { } auc ? $", AUC {auc:F4}, log loss {r.LogLoss:F4}, longest step {r.LongestStepSeconds:F2} s" : "") +
        (r.Split is { } split ? $"; {split}" : "");

    static string Removed(JobEvent e) => e.Removal switch
    {
        RankRemoval.FoundDead => $"rank {e.Rank} ({e.Node}/{e.Device}) removed at step {e.Step}: {e.Detail}; " +
                                 (e.Seconds is { } silent ? $"its node silent for {silent:F1} s" : "its node never heard from"),
        RankRemoval.PlacementNotTaken => $"placement not taken: node {e.Node} could not take it on {e.Device}",
        _ => $"lost its node: node {e.Node} sent no heartbeat for {S(e.Seconds):0.#} s",
    };

    static string Pause(GangPause? why) => why switch
    {
        GangPause.RanksJoined => "ranks joined",
        GangPause.BelowMinimum => "below the minimum",
        _ => "a rank lost contact with a peer",
    };

    /// <summary>How a recommendation job's embedding is sharded and protected; says so when live silos are too few.</summary>
    public static string Embedding(ShardConfig c, int liveSilos)
    {
        var tables = $"26 tables × {c.TotalRows / 26:N0} rows × dim {c.Dim} in {c.Shards} shard grains";
        var text = c.CheckpointInterval > 0
            ? $"embedding: {tables}, checkpointed every {c.CheckpointInterval} steps (a lost shard rolls the job back to the last checkpoint)"
            : c.R == 0
            ? $"embedding: {tables}, no parity (a lost silo fails the job)"
            : $"embedding: {tables}, {c.Groups} coding group(s) of k = {c.K} data + r = {c.R} parity shards ({(c.R == 1 ? "XOR" : "Reed–Solomon")}), each shard of a group on its own silo";
        if (c.R > 0 && liveSilos < c.K + c.R)
            text += $"; only {liveSilos} live silo(s) for {c.K + c.R} shards per group: some shards share a silo, and a failure there can lose more than r (add silos for full protection)";
        return text;
    }
}
