using Orchestrator.Grains;
using Spectre.Console;

namespace Orchestrator.Cli;

/// <summary>Follows jobs until they end: live progress bars on a terminal, periodic lines otherwise.</summary>
public static class JobWatcher
{
    static readonly TimeSpan Poll = TimeSpan.FromSeconds(1);
    static readonly TimeSpan PlainLineEvery = TimeSpan.FromSeconds(5);

    public static async Task<IReadOnlyList<JobInfo>> Follow(IGrainFactory grains, IReadOnlyList<string> jobIds, CancellationToken ct)
    {
        var jobs = jobIds.Select(id => grains.GetGrain<IJobGrain>(id)).ToList();
        var retry = ClusterLine.Create(TimeSpan.FromSeconds(120), what => AnsiConsole.MarkupLine($"[yellow]{Markup.Escape(DateTime.Now.ToString("HH:mm:ss"))} {Markup.Escape(what)}[/]"));
        async Task<JobInfo[]> Snapshot() => await Task.WhenAll(jobs.Select(j => retry.ExecuteAsync(async _ => await j.GetInfo(), ct).AsTask()));

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
        _ => s.ToString().ToLowerInvariant(),
    };
}
