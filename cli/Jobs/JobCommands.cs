namespace Orchestrator.Cli.Jobs;

/// <summary>orch submit, jobs, job, events (logs), cancel, delete, nodes: a user's daily view of their jobs and the cluster.</summary>
public static class JobCommands
{
    public static IEnumerable<Command> Create() => [Submit(), List(), Show(), Events("events"), Events("logs"), Cancel(), Delete(), Nodes()];

    static Command Submit()
    {
        var file = new Argument<FileInfo>("FILE") { Description = "Job spec, YAML or JSON (see README: job-spec reference)" };
        var sets = new Option<string[]>("--set") { Description = "Override a field: --set train.lr=0.1 (repeatable)", AllowMultipleArgumentsPerToken = false };
        var sweeps = new Option<string[]>("--sweep") { Description = "One job per value: --sweep train.lr=0.01,0.1 (repeatable: the product of all sweeps)" };
        var wait = new Option<bool>("--wait") { Description = "Follow the jobs with live progress until they end; exit 1 if any fails" };
        var skipDataCheck = new Option<bool>("--skip-data-check") { Description = "Do not check data.path here (when the data lives only on the workers)" };
        var submit = new Command("submit", "Validate a job spec and submit it (or a sweep of it)") { file, sets, sweeps, wait, skipDataCheck };
        submit.SetAction((p, ct) => Cli.Run(async () =>
        {
            var specs = JobSubmitter.LoadSpecs(p.GetValue(file)!, p.GetValue(sets) ?? [], p.GetValue(sweeps) ?? [], !p.GetValue(skipDataCheck));
            await using var session = await ClusterSession.Connect(Cli.Connection(p), allowEmbedded: true, ct: ct);
            var follow = p.GetValue(wait);
            if (session.IsEmbedded)
            {
                AnsiConsole.MarkupLine($"[grey]No cluster is running: using an {Markup.Escape(session.Description)} until the jobs end ('orch up' keeps one running).[/]");
                follow = true;
            }
            var ids = await JobSubmitter.SubmitAll(session.Grains, specs, ct);
            return follow ? await JobWatcher.FollowAndSummarize(session.Grains, ids, ct) : 0;
        }));
        return submit;
    }

    static Command List()
    {
        var jobs = new Command("jobs", "List jobs with state, progress and accuracy");
        jobs.SetAction((p, ct) => Connected(p, ct, async grains =>
        {
            Views.Jobs(await grains.GetGrain<IJobIndexGrain>(SchedulerKeys.Cluster).List());
            return 0;
        }));
        return jobs;
    }

    static Command Show()
    {
        var id = new Argument<string>("ID") { Description = "Job id (see 'orch jobs')" };
        var follow = new Option<bool>("--follow", "-f") { Description = "Show live progress until the job ends" };
        var job = new Command("job", "Show a job: state, placement, progress, result, recent events") { id, follow };
        job.SetAction((p, ct) => Connected(p, ct, async grains =>
        {
            if (p.GetValue(follow)) return await JobWatcher.FollowAndSummarize(grains, [p.GetValue(id)!], ct);
            var grain = grains.GetGrain<IJobGrain>(p.GetValue(id)!);
            Views.Job(await grain.GetInfo(), await grain.GetEvents());
            return 0;
        }));
        return job;
    }

    static Command Events(string name)
    {
        var id = new Argument<string>("ID") { Description = "Job id" };
        var events = new Command(name, "Show a job's event history: when, who, what kind, and what happened") { id };
        events.SetAction((p, ct) => Connected(p, ct, async grains =>
        {
            Views.Events(await grains.GetGrain<IJobGrain>(p.GetValue(id)!).GetEvents());
            return 0;
        }));
        return events;
    }

    static Command Cancel()
    {
        var id = new Argument<string>("ID") { Description = "Job id" };
        var cancel = new Command("cancel", "Cancel a job; a running worker stops at its next report") { id };
        cancel.SetAction((p, ct) => Connected(p, ct, async grains =>
        {
            var info = await grains.GetGrain<IJobGrain>(p.GetValue(id)!).Cancel(Environment.UserName);
            AnsiConsole.MarkupLine($"{Markup.Escape(info.JobId)}: {JobWatcher.StateMarkup(info.State)}");
            return 0;
        }));
        return cancel;
    }

    static Command Delete()
    {
        var ids = new Argument<string[]>("ID") { Description = "Ids of jobs that have ended", Arity = ArgumentArity.ZeroOrMore };
        var finished = new Option<bool>("--all-finished") { Description = "Delete every job that has ended (succeeded, failed or cancelled) instead" };
        var delete = new Command("delete", "Delete jobs that have ended: their state, events and checkpoints (running jobs are refused: cancel them first)") { ids, finished };
        delete.SetAction((p, ct) => Connected(p, ct, async grains =>
        {
            var chosen = p.GetValue(finished)
                ? (await grains.GetGrain<IJobIndexGrain>(SchedulerKeys.Cluster).List()).Where(j => j.State.IsTerminal()).Select(j => j.JobId).ToList()
                : p.GetValue(ids)?.ToList() ?? [];
            if (chosen.Count == 0) throw new UsageException(p.GetValue(finished) ? "no job has ended" : "name the jobs to delete, or pass --all-finished");
            var failed = 0;
            foreach (var id in chosen)
            {
                try
                {
                    await grains.GetGrain<IJobGrain>(id).Delete();
                    AnsiConsole.MarkupLine($"deleted {Markup.Escape(id)}");
                }
                catch (Exception e) when (e is InvalidOperationException or KeyNotFoundException)
                {
                    AnsiConsole.MarkupLine($"[red]not deleted[/] {Markup.Escape(id)}: {Markup.Escape(e.Message)}");
                    failed++;
                }
            }
            return failed == 0 ? 0 : 1;
        }));
        return delete;
    }

    static Command Nodes()
    {
        var nodes = new Command("nodes", "List nodes: health, devices, what runs where, last heartbeat");
        nodes.SetAction((p, ct) => Connected(p, ct, async grains =>
        {
            var scheduler = await grains.GetGrain<ISchedulerGrain>(SchedulerKeys.Cluster).GetInfo();
            Views.Nodes(await Task.WhenAll(scheduler.Nodes.Select(n => grains.GetGrain<INodeGrain>(n).GetInfo())));
            if (scheduler.Queue.Count > 0) AnsiConsole.MarkupLine($"{scheduler.Queue.Count} job(s) waiting for a device");
            return 0;
        }));
        return nodes;
    }

    /// <summary>Runs <paramref name="action"/> against the running cluster the command names (never an embedded one).</summary>
    internal static Task<int> Connected(ParseResult p, CancellationToken ct, Func<IGrainFactory, Task<int>> action) => Cli.Run(async () =>
    {
        await using var session = await ClusterSession.Connect(Cli.Connection(p), allowEmbedded: false, ct: ct);
        return await action(session.Grains);
    });
}
