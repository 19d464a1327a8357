namespace Orchestrator.Cli.Jobs;

/// <summary>Follows jobs until they end: live progress bars on a terminal, periodic lines otherwise.</summary>
public static class JobWatcher
{
    static readonly TimeSpan Poll = TimeSpan.FromSeconds(1);
    static readonly TimeSpan PlainLineEvery = TimeSpan.FromSeconds(5);
    /// <summary>How long the cluster may stay unreachable while jobs are followed (a silo failing over takes seconds).</summary>
    static readonly TimeSpan UnreachableLimit = TimeSpan.FromSeconds(120);

    /// <summary>Follows the jobs, prints each one's outcome, and returns 0 when all succeeded, else 1.</summary>
    public static async Task<int> FollowAndSummarize(IGrainFactory grains, IReadOnlyList<string> ids, CancellationToken ct)
    {
        var final = await Follow(grains, ids, ct);
        foreach (var j in final)
        {
            var line = j.State == JobState.Succeeded
                ? $"[green]{Markup.Escape(j.JobId)} succeeded[/]: test accuracy [bold]{j.Result!.TestAccuracy:F4}[/] after {j.Result.TrainingEpochs} epoch{(j.Result.TrainingEpochs == 1 ? "" : "s")} ({j.Result.Steps} steps, {j.Result.TrainingSeconds:F1} s training, {j.Result.SamplesPerSecond:F0} samples/s)"
                : $"[red]{Markup.Escape(j.JobId)} {j.State.ToString().ToLowerInvariant()}[/]: {Markup.Escape(j.Failure?.Message ?? "")}";
            AnsiConsole.MarkupLine(line);
        }
        return final.All(j => j.State == JobState.Succeeded) ? 0 : 1;
    }

    public static async Task<IReadOnlyList<JobInfo>> Follow(IGrainFactory grains, IReadOnlyList<string> jobIds, CancellationToken ct)
    {
        var jobs = jobIds.Select(id => grains.GetGrain<IJobGrain>(id)).ToList();
        var reachability = new ReachabilityLog(what => AnsiConsole.MarkupLine($"[yellow]{Markup.Escape(DateTime.Now.ToString("HH:mm:ss"))} {Markup.Escape(what)}[/]"));
        async Task<JobInfo[]> Snapshot()
        {
            while (true)
            {
                try
                {
                    var infos = await Task.WhenAll(jobs.Select(j => j.GetInfo())).WaitAsync(ct);
                    reachability.Answered();
                    return infos;
                }
                catch (Exception e) when (Resilience.IsTransient(e))
                {
                    reachability.Failed(e);
                    if (reachability.Unreachable > UnreachableLimit)
                        throw new CliException("the cluster stayed unreachable; check that its silos (and Redis) are running, then follow the jobs again with 'orch job ID --follow'");
                    await Task.Delay(Poll, ct);
                }
            }
        }

        if (!AnsiConsole.Profile.Capabilities.Interactive)
        {
            var last = new Dictionary<string, (JobState State, DateTime Printed)>();
            while (true)
            {
                var infos = await Snapshot();
                foreach (var i in infos)
                {
                    if (last.TryGetValue(i.JobId, out var l) && l.State == i.State && DateTime.UtcNow - l.Printed < PlainLineEvery) continue;
                    if (l.State == i.State && i.State.IsTerminal()) continue;
                    Console.WriteLine($"{DateTime.Now:HH:mm:ss} {i.JobId} {i.State.ToString().ToLowerInvariant()} {ProgressText(i)}");
                    last[i.JobId] = (i.State, DateTime.UtcNow);
                }
                if (infos.All(i => i.State.IsTerminal())) return infos;
                await Task.Delay(Poll, ct);
            }
        }

        JobInfo[] final = [];
        await AnsiConsole.Progress()
            .AutoClear(false)
            .HideCompleted(false)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn())
            .StartAsync(async ctx =>
            {
                var bars = jobIds.ToDictionary(id => id, id => ctx.AddTask(id, maxValue: 1));
                while (true)
                {
                    var infos = await Snapshot();
                    foreach (var i in infos)
                    {
                        var bar = bars[i.JobId];
                        if (i.Progress is { TotalSteps: > 0 } p)
                        {
                            bar.MaxValue = p.TotalSteps;
                            bar.Value = p.Step;
                        }
                        if (i.State == JobState.Succeeded) bar.Value = bar.MaxValue;
                        bar.Description = $"{Markup.Escape(i.JobId),-28} {StateMarkup(i.State),-20} {Markup.Escape(ProgressText(i))}";
                        if (i.State.IsTerminal()) bar.StopTask();
                    }
                    if (infos.All(i => i.State.IsTerminal()))
                    {
                        final = infos;
                        return;
                    }
                    await Task.Delay(Poll, ct);
                }
            });
        return final;
    }

    public static string ProgressText(JobInfo i)
    {
        if (i.Result is { } r) return $"accuracy {r.TestAccuracy:F4}  loss {r.FinalLoss:F4}  {r.Steps} steps in {r.TrainingSeconds:F0}s";
        if (i.State == JobState.Failed) return i.Failure?.Message ?? "failed";
        if (i.Unschedulable is { } why) return $"unschedulable: it {why.Message}";
        if (i.Progress is not { } p) return i.State is JobState.Pending or JobState.Recovering ? "waiting for a device" : "starting";
        var acc = p.TestAccuracy is { } a ? $"  acc {a:F4}" : "";
        return $"step {p.Step}/{p.TotalSteps}  epoch {p.TrainingEpoch}  loss {p.Loss:F4}{acc}  {p.SamplesPerSecond:F0} samples/s";
    }

    public static string StateMarkup(JobState s) => s switch
    {
        JobState.Succeeded => "[green]succeeded[/]",
        JobState.Failed => "[red]failed[/]",
        JobState.Cancelled => "[grey]cancelled[/]",
        JobState.Running => "[blue]running[/]",
        JobState.Recovering => "[yellow]recovering[/]",
        JobState.Unschedulable => "[red]unschedulable[/]",
        _ => s.ToString().ToLowerInvariant(),
    };
}
