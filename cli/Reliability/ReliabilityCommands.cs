using System.Globalization;
using Orchestrator.Core.Reliability;
using Orchestrator.Cli.Jobs;

namespace Orchestrator.Cli.Reliability;

/// <summary>
/// orch incidents: the cluster's incident log. orch reliability: with a cluster (--redis or --gateway), its measured failure rate, MTTF per category and node,
/// incidents with their costs and each job's ETTR; then the Meta study's model projected from 8 to 100,000
/// devices at the measured rate and at the study's, for checkpoint-restart at its Daly-optimal interval and for
/// erasure-coded recovery (no lost work; each failure costs the rebuild).
/// </summary>
public static class ReliabilityCommands
{
    public static IEnumerable<Command> Create() => [Reliability(), Incidents()];

    static Command Incidents()
    {
        var last = new Option<int>("--last") { Description = "How many of the latest incidents", DefaultValueFactory = _ => 50 };
        var incidents = new Command("incidents", "The cluster's incident log: every failure it noticed (node lost, silo crash, job failures by cause, preemptions, state-store outages), with counts per category") { last };
        incidents.SetAction((p, ct) => Cli.Run(async () =>
        {
            if (p.GetValue(last) is < 1 or > 10_000) throw new UsageException($"--last: give 1 to {10_000}");
            await using var session = await ClusterSession.Connect(Cli.Connection(p), allowEmbedded: false, ct: ct);
            Views.Incidents(await session.Grains.GetGrain<IIncidentLogGrain>(SchedulerKeys.Cluster).List(p.GetValue(last)));
            return 0;
        }));
        return incidents;
    }

    static Command Reliability()
    {
        var devices = new Option<int[]>("--devices") { Description = "Device counts (8 per node), comma-separated or repeated; default 8 to 100,000", AllowMultipleArgumentsPerToken = true, CustomParser = ParseCounts };
        var rate = new Option<double[]>("--rate") { Description = "Failures per 1,000 node-days to project instead (default: this cluster's measured rate when connected, and the study's two clusters, 6.50 and 2.34)", AllowMultipleArgumentsPerToken = true };
        var write = new Option<double?>("--checkpoint-write") { Description = "Seconds to write one checkpoint (default: 2.1, measured by 'orch bench ecrm' for 166 MB of embedding tables)" };
        var restart = new Option<double?>("--restart") { Description = "Seconds from a failure to training again after a checkpoint restore (default: the cluster's median measured recovery, else 7.9 from 'orch bench ecrm')" };
        var rebuild = new Option<double?>("--rebuild") { Description = "Seconds from a failure to training again after an erasure-coded rebuild (default: 3.9, measured by 'orch bench ecrm')" };
        var incidents = new Option<int>("--incidents") { Description = "How many of the latest incidents to list (connected only)", DefaultValueFactory = _ => 20 };
        var command = new Command("reliability", "This cluster's failure rate, MTTF and per-job ETTR (with --redis or --gateway), and job MTTF and expected ETTR projected from 8 to 100,000 devices (the Meta study's model) for checkpoint-restart and erasure-coded recovery")
        {
            devices, rate, write, restart, rebuild, incidents,
        };
        command.SetAction((p, ct) => Cli.Run(async () =>
        {
            var counts = p.GetValue(devices) is { Length: > 0 } d ? d : ClusterQueries.DefaultProjectionDevices;
            var rates = p.GetValue(rate) ?? [];
            if (rates.Any(x => x is <= 0 or > 10_000)) throw new UsageException("--rate: give failures per 1,000 node-days, above 0");
            if (p.GetValue(incidents) is < 0 or > 10_000) throw new UsageException("--incidents: give 0 to 10,000");
            TimeSpan? w = Seconds(p.GetValue(write), "--checkpoint-write"), u0 = Seconds(p.GetValue(restart), "--restart"), rb = Seconds(p.GetValue(rebuild), "--rebuild");
            var target = Cli.Connection(p);
            IReadOnlyList<ProjectionSet> sets;
            ReliabilityReport? report = null;
            if (target.IsEmbeddedDefault)
            {
                AnsiConsole.MarkupLine("[grey]No cluster named (--redis or --gateway): the model alone, at the study's rates.[/]");
                sets = [];
            }
            else
            {
                await using var session = await ClusterSession.Connect(target, allowEmbedded: false, ct: ct);
                var queries = new ClusterQueries(session.Grains);
                report = await queries.Reliability(counts, w, u0, rb).WaitAsync(ct);
                var latest = await queries.Incidents(Math.Max(1, p.GetValue(incidents))).WaitAsync(ct);
                Measured(report, p.GetValue(incidents) > 0 ? latest : []);
                sets = report.Projections;
            }
            var (cw, cu, crb) = (report?.CheckpointWrite ?? w ?? ClusterQueries.DefaultCheckpointWrite, report?.Restart ?? u0 ?? ClusterQueries.DefaultRestart, report?.Rebuild ?? rb ?? ClusterQueries.DefaultRebuild);
            if (rates.Length > 0)
                sets = rates.Select(r => new ProjectionSet($"{r.ToString(CultureInfo.InvariantCulture)} per 1,000 node-days (given)", r,
                    counts.Select(c => ReliabilityModel.Project(c, r / 1000, cw, cu, crb)).ToList())).ToList();
            else if (sets.Count == 0)
                sets = [Set("RSC-1 (the study)", ReliabilityModel.Rsc1PerThousandNodeDays), Set("RSC-2 (the study)", ReliabilityModel.Rsc2PerThousandNodeDays)];
            ProjectionSet Set(string source, double perThousand) => new(source, perThousand, counts.Select(c => ReliabilityModel.Project(c, perThousand / 1000, cw, cu, crb)).ToList());
            foreach (var set in sets) Projections(set, cw, cu, crb, report?.MedianRecoverySeconds is not null && u0 is null);
            AnsiConsole.MarkupLine("E[[ETTR]] ≈ [[1 − N·r_f·(u0 + Δt/2)]] / (1 + w/Δt); erasure-coded: 1 − N·r_f·rebuild (no rollback, no periodic write). The study: 0.93 and 0.70 for a 16k-GPU job at 5- and 60-minute intervals with u0 = 5 min.");
            return 0;
        }));
        return command;
    }

    static void Measured(ReliabilityReport r, IReadOnlyList<IncidentView> latest)
    {
        var regime = r.Failures == 0 ? "no infrastructure failure yet"
            : r.FailuresPerThousandNodeDays > ReliabilityModel.Rsc1PerThousandNodeDays ? $"{r.FailuresPerThousandNodeDays / ReliabilityModel.Rsc1PerThousandNodeDays:F0}× RSC-1's rate"
            : r.FailuresPerThousandNodeDays > ReliabilityModel.Rsc2PerThousandNodeDays ? "between the study's two clusters" : "below both of the study's clusters";
        AnsiConsole.MarkupLine($"[bold]This cluster[/]: {r.Nodes.Count} node(s), {r.NodeDays:F4} node-days, {r.Failures} infrastructure failure(s): " +
                               $"[bold]{r.FailuresPerThousandNodeDays:F2} failures per 1,000 node-days[/] ({regime}; the study: RSC-1 6.50, RSC-2 2.34); " +
                               $"node MTTF {(r.ClusterMttfHours is { } h ? Duration(TimeSpan.FromHours(h)) : "–")}; median recovery {(r.MedianRecoverySeconds is { } m ? $"{m:F1} s" : "–")}");
        var categories = new Table().Border(TableBorder.Simple).AddColumns("CATEGORY", "INCIDENTS", "MTTF");
        foreach (var (name, count) in r.IncidentCounts.OrderByDescending(c => c.Value))
        {
            var line = r.Categories.FirstOrDefault(c => c.Name == name.ToString());
            categories.AddRow(name.ToString(), count.ToString(CultureInfo.InvariantCulture), line?.Mttf is { } t ? Duration(t) : MeasuredReliability.IsInfrastructure(name) ? "–" : "(not a cluster failure)");
        }
        if (r.IncidentCounts.Count > 0) AnsiConsole.Write(categories);
        var nodes = new Table().Border(TableBorder.Simple).AddColumns("NODE", "NODE-DAYS", "FAILURES", "MTTF");
        foreach (var n in r.Nodes) nodes.AddRow(Markup.Escape(n.Name), n.NodeDays.ToString("F4", CultureInfo.InvariantCulture), n.Failures.ToString(CultureInfo.InvariantCulture), n.Mttf is { } t ? Duration(t) : "–");
        if (r.Nodes.Count > 0) AnsiConsole.Write(nodes);
        if (latest.Count > 0)
        {
            AnsiConsole.MarkupLine("[bold]Incidents[/] (latest; recovery: until each job it hit trained again)");
            var table = new Table().Border(TableBorder.Simple).AddColumns("TIME", "CATEGORY", "NODE/SILO", "JOBS", "DETECTED AFTER", "RECOVERY", "STEPS LOST");
            foreach (var v in latest)
                table.AddRow($"{v.Incident.At.ToLocalTime():HH:mm:ss}", v.Incident.Category.ToString(), Markup.Escape(v.Incident.NodeId ?? v.Incident.Silo ?? ""), Markup.Escape(string.Join(", ", v.Incident.Jobs)),
                    v.Incident.DetectionSeconds is { } s ? $"{s:F1} s" : "–",
                    v.Jobs.Count > 0 ? string.Join(", ", v.Jobs.Select(j => j.RecoverySeconds is { } x ? $"{x:F1} s" : "–")) : "–",
                    v.Jobs.Count > 0 ? string.Join(", ", v.Jobs.Select(j => j.LostSteps.ToString(CultureInfo.InvariantCulture))) : "–");
            AnsiConsole.Write(table);
        }
        if (r.Jobs.Count > 0)
        {
            AnsiConsole.MarkupLine("[bold]ETTR per job[/] (productive training time / wall time; lost time by cause, seconds)");
            var jobs = new Table().Border(TableBorder.Simple).AddColumns("JOB", "STATE", "ETTR", "WALL", "PRODUCTIVE", "QUEUEING", "STARTING", "DETECTION", "RECOVERY", "LOST PROGRESS", "STEPS REDONE");
            foreach (var j in r.Jobs)
            {
                var t = j.Time;
                jobs.AddRow(Markup.Escape(j.JobId), j.State.ToString(), t.Ettr.ToString("F3", CultureInfo.InvariantCulture),
                    S(t.WallSeconds), S(t.ProductiveSeconds), S(t.QueueingSeconds), S(t.StartingSeconds), S(t.DetectionSeconds), S(t.RecoverySeconds), S(t.LostProgressSeconds),
                    t.LostSteps.ToString(CultureInfo.InvariantCulture));
            }
            AnsiConsole.Write(jobs);
            var ettrs = r.Jobs.Select(j => j.Time.Ettr).Order().ToList();
            AnsiConsole.MarkupLine($"ETTR over {ettrs.Count} job(s): min {ettrs[0]:F3}, median {ettrs[ettrs.Count / 2]:F3}, max {ettrs[^1]:F3}");
        }
    }

    static void Projections(ProjectionSet set, TimeSpan w, TimeSpan u0, TimeSpan rb, bool restartMeasured)
    {
        var table = new Table().AddColumns("devices", "nodes", "job MTTF", "checkpoint interval (Daly)", "E[[ETTR]] checkpoint-restart", "E[[ETTR]] erasure-coded", "lost time, checkpoint / erasure-coded");
        foreach (var row in set.Rows)
            table.AddRow(row.Devices.ToString("N0", CultureInfo.InvariantCulture), row.Nodes.ToString("N0", CultureInfo.InvariantCulture), Duration(row.JobMttf), Duration(row.CheckpointInterval),
                row.EttrCheckpoint.ToString("F4", CultureInfo.InvariantCulture), row.EttrErasureCoded.ToString("F4", CultureInfo.InvariantCulture),
                (1 - row.EttrErasureCoded) > 0 ? $"{(1 - row.EttrCheckpoint) / (1 - row.EttrErasureCoded):F1}×" : "–");
        AnsiConsole.MarkupLine($"[bold]{Markup.Escape(set.Source)}: {set.FailuresPerThousandNodeDays.ToString("0.##", CultureInfo.InvariantCulture)} failures per 1,000 node-days[/]; checkpoint write {w.TotalSeconds:0.#} s, restart {u0.TotalSeconds:0.#} s{(restartMeasured ? " (measured here)" : "")}, erasure-coded rebuild {rb.TotalSeconds:0.#} s");
        AnsiConsole.Write(table);
    }

    static int[] ParseCounts(System.CommandLine.Parsing.ArgumentResult result)
    {
        var counts = new List<int>();
        foreach (var token in result.Tokens)
            foreach (var part in token.Value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                if (!int.TryParse(part, NumberStyles.Integer, CultureInfo.InvariantCulture, out var c) || c is < 1 or > 10_000_000)
                {
                    result.AddError($"--devices: '{part}' is not a device count from 1 to 10,000,000");
                    return [];
                }
                counts.Add(c);
            }
        return counts.ToArray();
    }

    static string S(double seconds) => seconds.ToString("F1", CultureInfo.InvariantCulture);

    static TimeSpan? Seconds(double? value, string option) => value switch
    {
        null => null,
        >= 0 and <= 1e6 => TimeSpan.FromSeconds(value.Value),
        _ => throw new UsageException($"{option} {value}: give seconds from 0 to 1,000,000"),
    };

    static string Duration(TimeSpan t) => t.TotalDays >= 2 ? $"{t.TotalDays:F1} d" : t.TotalHours >= 2 ? $"{t.TotalHours:F1} h" : t.TotalMinutes >= 2 ? $"{t.TotalMinutes:F1} min" : $"{t.TotalSeconds:F0} s";
}
