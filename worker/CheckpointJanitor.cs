using Microsoft.Extensions.Hosting;
using Orchestrator.Core.Jobs;

namespace Orchestrator.Worker;

/// <summary>
/// Cleans the checkpoint store: every <see cref="NodeAgentOptions.CheckpointCleanupPeriod"/> it asks each job with a
/// folder there what it keeps (<see cref="IJobGrain.GetCheckpoints"/>) and removes the rest (<see cref="CheckpointRetention"/>):
/// checkpoints older than the job keeps, writes that never finished, and everything of a job that ended or no longer
/// exists. Every worker sharing the store runs it; removing is idempotent.
/// </summary>
public sealed class CheckpointJanitor(IGrainFactory grains, ICheckpointStore store, NodeAgentOptions options, ILogger<CheckpointJanitor> log) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.CheckpointCleanupPeriod);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken)) await Sweep(stoppingToken);
        }
        catch (OperationCanceledException) { /* the worker stops */ }
    }

    /// <summary>One pass over every job folder in the store.</summary>
    public async Task Sweep(CancellationToken ct = default)
    {
        foreach (var job in store.Jobs())
        {
            if (ct.IsCancellationRequested) return;
            try { await Clean(job); }
            catch (Exception e) when (e is not OperationCanceledException) { log.CheckpointCleanupFailed(job, e); }
        }
    }

    async Task Clean(string job)
    {
        var holding = await grains.GetGrain<IJobGrain>(job).GetCheckpoints();
        var now = DateTime.UtcNow;
        var ended = JobLifecycle.IsTerminal(holding.State);
        var live = CheckpointRetention.IsLive(holding.Exists, ended, holding.EndedAt, now, options.CheckpointGrace);
        var files = store.Files(job);
        var remove = CheckpointRetention.ToRemove(files, live, holding.Kept.Select(k => k.Key).ToHashSet(), now, options.CheckpointGrace);
        if (remove.Count == 0) return;
        foreach (var file in remove) store.Delete(file.Key);
        if (!live && remove.Count == files.Count) store.DeleteJob(job);
        log.CheckpointsRemoved(job, remove.Count, remove.Sum(f => f.Bytes),
            !holding.Exists ? "the cluster does not know the job" : ended ? $"the job {holding.State.ToString().ToLowerInvariant()}" : "older than the checkpoints it keeps, or never finished");
    }
}
