namespace Orchestrator.Core.Checkpoints;

/// <summary>
/// Which files of a job's folder in the checkpoint store may go: everything but the checkpoints a live job keeps.
/// Nothing younger than the grace period is touched, so a checkpoint being written, or written and not yet reported
/// to its job, survives; a finished job (or one the cluster no longer knows) keeps nothing once it is over the grace.
/// </summary>
public static class CheckpointRetention
{
    /// <param name="live">The job exists and has not ended more than <paramref name="grace"/> ago.</param>
    /// <param name="kept">Keys of the checkpoints the job keeps (ignored unless <paramref name="live"/>).</param>
    public static IReadOnlyList<StoredFile> ToRemove(IReadOnlyList<StoredFile> files, bool live, IReadOnlySet<string> kept, DateTime now, TimeSpan grace) =>
        files.Where(f => now - f.ModifiedUtc >= grace && !(live && !f.Partial && kept.Contains(f.Key))).ToList();

    /// <summary>A job is live for retention while it exists and did not end more than <paramref name="grace"/> ago.</summary>
    public static bool IsLive(bool exists, bool ended, DateTime? endedAt, DateTime now, TimeSpan grace) =>
        exists && (!ended || endedAt is not { } at || now - at < grace);
}
