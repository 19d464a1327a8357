namespace Orchestrator.Cli.Jobs;

/// <summary>Tables and panels for jobs, nodes and events.</summary>
public static class Views
{
    public static void Jobs(IReadOnlyList<JobInfo> jobs)
    {
        if (jobs.Count == 0)
        {
            AnsiConsole.MarkupLine("[grey]no jobs yet: submit one with 'orch submit examples/fmnist-mlp.yaml --wait'[/]");
            return;
        }
        var table = new Table().Border(TableBorder.Simple)
            .AddColumns("ID", "STATE", "MODEL", "PROGRESS", "LOSS", "ACCURACY", "NODE", "OWNER", "AGE");
        foreach (var j in jobs)
        {
            var p = j.Progress;
            var progress = p is { TotalSteps: > 0 } ? $"{p.Step}/{p.TotalSteps} ({100.0 * p.Step / p.TotalSteps:F0}%)" : "-";
            var accuracy = j.Result?.TestAccuracy ?? p?.TestAccuracy;
            table.AddRow(
                Markup.Escape(j.JobId),
                JobWatcher.StateMarkup(j.State),
                Markup.Escape(j.Model),
                progress,
                (j.Result?.FinalLoss ?? p?.Loss) is { } loss ? $"{loss:F4}" : "-",
                accuracy is { } a ? $"{a:F4}" : "-",
                Markup.Escape(Where(j)),
                Markup.Escape(j.Owner),
                Age(j.SubmittedAt));
        }
        AnsiConsole.Write(table);
    }

    /// <summary>Where a job runs: its device (and fused array), or a data-parallel job's ranks.</summary>
    static string Where(JobInfo j)
    {
        if (j.Ranks is { Count: > 0 } ranks) return $"{ranks.Count} rank{(ranks.Count > 1 ? "s" : "")}: {string.Join(", ", ranks.Select(r => $"{r.NodeId}/{r.Device}"))}";
        if (j.Assignment is { } a && !a.Gang) return $"{a.NodeId}/{a.Device}{(a.ArrayWidth > 1 ? $" ({a.ArrayId}, {a.ArrayWidth} fused)" : "")}";
        return "-";
    }

    public static void Job(JobInfo j, IReadOnlyList<JobEvent> events)
    {
        var grid = new Grid().AddColumn().AddColumn();
        void Row(string k, string v) => grid.AddRow($"[bold]{k}[/]", v);
        Row("job", Markup.Escape(j.JobId));
        Row("state", JobWatcher.StateMarkup(j.State));
        Row("model", Markup.Escape(j.Model));
        Row("owner", Markup.Escape(j.Owner));
        Row("priority", j.Priority.ToString());
        Row("submitted", $"{j.SubmittedAt.ToLocalTime():u}");
        if (j.Gang is { } g)
        {
            var byAssignment = (j.Ranks ?? []).ToDictionary(r => r.AssignmentEpoch);
            var members = g.Ranks.Select((assignmentEpoch, rank) => byAssignment.TryGetValue(assignmentEpoch, out var r) ? $"{rank}: {r.NodeId}/{r.Device}" : $"{rank}: ?");
            var state = j.State.IsTerminal() ? "ended" : g.CanTrain ? "training" : j.State == JobState.Running ? "paused (below its minimum)" : "forming";
            Row("gang", Markup.Escape($"{g.Ranks.Count} rank(s), membership epoch {g.MembershipEpoch}, {state}{(g.Waiting > 0 ? $", {g.Waiting} joining" : "")}"));
            if (g.Ranks.Count > 0 && !j.State.IsTerminal()) Row("ranks", Markup.Escape(string.Join("; ", members)));
        }
        else if (j.Assignment is { } a)
        {
            Row("placement", Markup.Escape($"{a.NodeId}/{a.Device} (assignment epoch {a.AssignmentEpoch})"));
            if (a.ArrayWidth > 1) Row("fused array", Markup.Escape($"{a.ArrayId}, {a.ArrayWidth} jobs trained as one"));
        }
        Row("progress", Markup.Escape(JobWatcher.ProgressText(j)));
        if (j.CheckpointStep is { } cp) Row("checkpoint", $"step {cp}");
        if (j.Recoveries > 0) Row("recoveries", j.Recoveries.ToString());
        if (j.Result is { } r)
        {
            var click = r.Auc is { } auc ? $", AUC [green]{auc:F4}[/], log loss {r.LogLoss:F4}" : "";
            Row("result", $"test accuracy [green]{r.TestAccuracy:F4}[/]{click}, loss {r.FinalLoss:F4}, {r.Steps} steps, {r.TrainingEpochs} epochs, {r.TrainingSeconds:F1} s, {r.SamplesPerSecond:F0} samples/s");
            if (r.Split is { } split) Row("per step", Markup.Escape(split.ToString()["per step: ".Length..]));
        }
        if (j.Failure is { } f) Row("failure", $"[red]{Markup.Escape(f.Message)}[/] ({f.Cause}, {f.Category})");
        AnsiConsole.Write(grid);
        AnsiConsole.WriteLine();
        Events(events, last: 15);
    }

    public static void Events(IReadOnlyList<JobEvent> events, int? last = null)
    {
        var table = new Table().Border(TableBorder.Simple).AddColumns("TIME", "SOURCE", "KIND", "WHAT");
        foreach (var e in last is { } n ? events.TakeLast(n) : events)
            table.AddRow($"{e.At.ToLocalTime():HH:mm:ss.fff}", Markup.Escape(e.Source), e.Kind.ToString(), Markup.Escape(e.Message));
        AnsiConsole.Write(table);
    }

    public static void Incidents(IReadOnlyList<Incident> incidents)
    {
        if (incidents.Count == 0)
        {
            AnsiConsole.MarkupLine("[grey]no incidents recorded[/]");
            return;
        }
        var table = new Table().Border(TableBorder.Simple).AddColumns("TIME", "CATEGORY", "WHAT", "NODE", "JOB", "DETECTED AFTER");
        foreach (var i in incidents)
            table.AddRow($"{i.At.ToLocalTime():MM-dd HH:mm:ss}", i.Category.ToString(), Markup.Escape(i.Message), Markup.Escape(i.NodeId ?? ""),
                Markup.Escape(string.Join(", ", i.Jobs)), i.DetectionSeconds is { } d ? $"{d:F1} s" : "");
        AnsiConsole.Write(table);
        AnsiConsole.MarkupLine(Markup.Escape(string.Join(", ", incidents.GroupBy(i => i.Category).OrderByDescending(g => g.Count()).Select(g => $"{g.Key} {g.Count()}"))));
    }

    public static void Nodes(IReadOnlyList<NodeInfo> nodes)
    {
        if (nodes.Count == 0)
        {
            AnsiConsole.MarkupLine("[grey]no nodes have joined: start a worker with 'orch-worker --redis HOST:PORT --node-id NAME'[/]");
            return;
        }
        var table = new Table().Border(TableBorder.Simple).AddColumns("NODE", "HEALTH", "DEVICES", "RUNNING", "LAST HEARTBEAT", "HOST/PID");
        foreach (var n in nodes)
        {
            table.AddRow(
                Markup.Escape(n.NodeId),
                n.Health == NodeHealth.Healthy ? "[green]healthy[/]" : "[red]dead[/]",
                Markup.Escape(string.Join(",", n.Devices)),
                n.Assignments.Count == 0 ? "-" : Markup.Escape(string.Join(", ", n.Assignments.Select(a => $"{a.JobId}@{a.Device}"))),
                n.LastHeartbeat is { } h ? $"{(DateTime.UtcNow - h).TotalSeconds:F1}s ago" : "-",
                Markup.Escape($"{n.Host}/{n.ProcessId}"));
        }
        AnsiConsole.Write(table);
    }

    static string Age(DateTime at)
    {
        var d = DateTime.UtcNow - at;
        return d.TotalMinutes < 1 ? $"{d.TotalSeconds:F0}s" : d.TotalHours < 1 ? $"{d.TotalMinutes:F0}m" : d.TotalDays < 1 ? $"{d.TotalHours:F0}h" : $"{d.TotalDays:F0}d";
    }
}
