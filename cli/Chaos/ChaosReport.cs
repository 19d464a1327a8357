namespace Orchestrator.Cli.Chaos;

/// <summary>A scored chaos run: the faults injected with their detection, recovery and steps lost, each job's outcome,
/// the invariants, and the cluster's own incident log and job time lines (written by --report).</summary>
/// <param name="Logged">The cluster's own incident log over the run, with each incident's cost to the jobs it hit.</param>
/// <param name="Histories">Each job's time and time line (the source of its ETTR).</param>
public sealed record ChaosReport(string Scenario, int Seed, IReadOnlyList<ChaosReport.FaultOutcome> Faults, IReadOnlyList<ChaosReport.JobOutcome> Jobs,
    IReadOnlyList<(string Invariant, bool Passed, string Detail)> Invariants, string Summary,
    IReadOnlyList<IncidentView> Logged, IReadOnlyList<ChaosReport.JobReport> Histories)
{
    public bool Passed => Invariants.All(i => i.Passed);

    /// <param name="At">Seconds into the run.</param>
    /// <param name="DetectedAfter">Seconds from injection until the cluster noticed (crashes and hangs).</param>
    /// <param name="RecoveredAfter">Seconds from injection until every job it hit trained past its step (or ended).</param>
    public sealed record FaultOutcome(double At, ChaosFault Kind, string Fault, string Target, string? Error, bool Detectable, double? DetectedAfter,
        double? RecoveredAfter, long StepsLost);

    public sealed record JobOutcome(string JobId, JobState? State, long Steps, JobResult? Result, int Recoveries, JobTime? Time, JobFailure? Failure);

    public sealed record JobReport(string JobId, JobState State, JobTime? Time, JobHistory History);

    public void Print(string file)
    {
        var report = this;
        AnsiConsole.MarkupLine($"[bold]chaos scenario {Markup.Escape(report.Scenario)}[/], seed {report.Seed} (replay: orch chaos run {Markup.Escape(file)} --seed {report.Seed})");
        var incidents = new Table().AddColumns("at (s)", "fault", "target", "detected after (s)", "recovered after (s)", "steps lost");
        foreach (var f in report.Faults)
            incidents.AddRow(Markup.Escape($"{f.At:F1}"), Markup.Escape(f.Fault), Markup.Escape(f.Target),
                Markup.Escape(f.Error is not null ? $"not injected: {f.Error}" : f.Detectable ? f.DetectedAfter is { } d ? $"{d:F1}" : "not detected" : "–"),
                f.RecoveredAfter is { } r ? $"{r:F1}" : "–", f.StepsLost.ToString());
        AnsiConsole.Write(incidents);
        var byKind = report.Faults.Where(f => f.RecoveredAfter is not null).GroupBy(f => f.Kind).Select(g =>
        {
            var times = g.Select(f => f.RecoveredAfter!.Value).Order().ToList();
            var median = times.Count % 2 == 1 ? times[times.Count / 2] : (times[times.Count / 2 - 1] + times[times.Count / 2]) / 2;
            return $"{ChaosFaults.Name(g.Key)}: recovery median {median:F1} s, max {times[^1]:F1} s ({times.Count})";
        });
        foreach (var line in byKind) AnsiConsole.MarkupLine(Markup.Escape(line));
        AnsiConsole.MarkupLine("[bold]the cluster's incident log[/] (recovery: until each job it hit trained again)");
        var logged = new Table().AddColumns("time", "category", "node/silo", "jobs", "detected after (s)", "recovery (s)", "steps lost");
        foreach (var v in report.Logged)
            logged.AddRow(Markup.Escape($"{v.Incident.At.ToLocalTime():HH:mm:ss.f}"), Markup.Escape(v.Incident.Category.ToString()), Markup.Escape(v.Incident.NodeId ?? v.Incident.Silo ?? ""),
                Markup.Escape(string.Join(", ", v.Incident.Jobs)), v.Incident.DetectionSeconds is { } d ? $"{d:F1}" : "–",
                v.Jobs.Count > 0 ? string.Join(", ", v.Jobs.Select(j => j.RecoverySeconds is { } r ? $"{r:F1}" : "–")) : "–",
                v.Jobs.Count > 0 ? string.Join(", ", v.Jobs.Select(j => j.LostSteps)) : "–");
        AnsiConsole.Write(logged);
        var jobs = new Table().AddColumns("job", "state", "steps", "result", "recoveries", "ETTR (productive / wall time)", "failure");
        foreach (var j in report.Jobs)
            jobs.AddRow(Markup.Escape(j.JobId), j.State?.ToString() ?? "?", j.Steps.ToString(),
                j.Result is { } res ? res.Auc is { } auc ? $"AUC {auc:F4}" : $"accuracy {res.TestAccuracy:F4}" : "–",
                j.Recoveries.ToString(),
                j.Time is { } t ? $"{t.Ettr:F3} (wall {t.WallSeconds:F1} s: queued {t.QueueingSeconds:F1}, starting {t.StartingSeconds:F1}, detection {t.DetectionSeconds:F1}, paused {t.RecoverySeconds:F1}, lost progress {t.LostProgressSeconds:F1})" : "–",
                Markup.Escape(j.Failure?.Message ?? ""));
        AnsiConsole.Write(jobs);
        var invariants = new Table().AddColumns("invariant", "", "detail");
        foreach (var (name, passed, detail) in report.Invariants) invariants.AddRow(Markup.Escape(name), passed ? "[green]pass[/]" : "[red]FAIL[/]", Markup.Escape(detail));
        AnsiConsole.Write(invariants);
        AnsiConsole.MarkupLine((report.Passed ? "[green]PASSED[/]: " : "[red]FAILED[/]: ") + Markup.Escape(report.Summary));
    }
}
