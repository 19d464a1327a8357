using System.Diagnostics;
using Orchestrator.Core.Recommendation;
using Orchestrator.Worker.Recommendation;
using Orchestrator.Core.Specs;

namespace Orchestrator.Cli.Bench;

/// <summary>
/// A DLRM job on a real local cluster (redis-server, silos, one worker) with its embedding unprotected, erasure-
/// coded (r = 1, r = 2) and checkpointed at its Young/Daly interval, side by side: steady-state time per step, then
/// the same job with a silo killed mid-run: time from the kill until the job is back past the step it had reached,
/// steps lost, bytes read to recover.
/// </summary>
public sealed class EcrmBenchmark(int tableRows)
{
    public sealed record Mode(string Name, string FaultTolerance, int K, int R);
    public sealed record Steady(Mode Mode, double MsPerStep);
    /// <param name="RecoverySeconds">From the kill until the job's reported step passed the step it had reached.</param>
    /// <param name="StallSeconds">The worker's longest training step: how long training itself stood still.</param>
    /// <param name="RecoveryWorkSeconds">The recovery's own work once the failure was detected: the slowest shard
    /// rebuild, or restoring the checkpoint plus training the lost steps again.</param>
    public sealed record Failure(Mode Mode, double RecoverySeconds, double StallSeconds, double RecoveryWorkSeconds, long StepsLost, long BytesRead, string? Error);

    const int Shards = 6, Batch = 128, Dim = 16;

    /// <summary>Rows per table: the embedding's size, which is what checkpoints write and rebuilds read.</summary>
    int TableRows => tableRows;

    EmbeddingLayout Layout => new(Enumerable.Repeat(tableRows, CriteoFormat.CategoricalFeatures).ToList(), Dim, Shards);

    string Spec(string data, int steps, string faultTolerance) => $$$"""
        name: ecrm-bench
        model: {type: dlrm, dim: {{{Dim}}}, bottom: [64], top: [64], tableRows: {{{TableRows}}}}
        data: {dataset: criteo, path: {{{data}}}, testExamples: 1000}
        train: {steps: {{{steps}}}, batchSize: {{{Batch}}}, optimizer: adam, lr: 0.002, seed: 1, checkpointEvery: 1000000}
        embedding: {shards: {{{Shards}}}, lr: 0.05, faultTolerance: {{{faultTolerance}}}}
        """;

    static async Task<JobInfo> Run(ProcessCluster cluster, string yaml, Func<JobInfo, Task>? watch = null)
    {
        var spec = JobSpecParser.Parse(yaml);
        var id = $"ecrm-{Guid.NewGuid():n}"[..14];
        var job = cluster.Grains.GetGrain<IJobGrain>(id);
        await job.Submit(new JobSubmission(JobSpecJson.Write(spec), "bench"));
        while (true)
        {
            var info = await job.GetInfo();
            if (watch is not null) await watch(info);
            if (info.State == JobState.Succeeded) return info;
            if (info.State.IsTerminal()) throw new CliException($"benchmark job {id} ended {info.State}: {info.Failure?.Message}");
            await Task.Delay(100);
        }
    }

    public async Task<(IReadOnlyList<Steady>, IReadOnlyList<Failure>, double CheckpointSeconds, int Interval)> Measure(
        int silos, int steps, double mttfSeconds, Action<string> progress)
    {
        var data = Path.Combine(Directory.CreateTempSubdirectory("ecrm-bench").FullName, "clicks.tsv");
        progress("writing 60,000 Criteo-format examples");
        CriteoSynth.Write(data, 60_000, seed: 1);
        await using var cluster = await ProcessCluster.Start(silos, workers: 1, progress);

        Mode none = new("none", "none", Shards, 0), ec1 = new("erasure coding r=1", $"{{k: {silos - 1}, r: 1}}", silos - 1, 1), ec2 = new("erasure coding r=2", $"{{k: {silos - 2}, r: 2}}", silos - 2, 2);
        progress("warm-up run");
        await Run(cluster, Spec(data, steps, "none")); // JIT, connections, the data file in the page cache
        // Young/Daly: checkpoint every √(2·δ·M), δ the time one checkpoint of every shard takes, measured directly.
        var checkpointSeconds = await TimeCheckpoint(cluster, data);
        var probe = await Run(cluster, Spec(data, 50, "none"));
        var roughStep = probe.Result!.TrainingSeconds / 50;
        var interval = (int)Math.Clamp(Math.Round(Math.Sqrt(2 * checkpointSeconds * mttfSeconds) / roughStep), 1, 1_000_000);
        var checkpoint = new Mode($"checkpoint every {interval} (Young/Daly)", $"{{checkpoint: {interval}}}", Shards, 0);
        var modes = new[] { none, ec1, ec2, checkpoint };
        // Rounds in alternating order; the median of each mode's rounds (this machine's timings drift).
        var samples = modes.ToDictionary(m => m, _ => new List<double>());
        for (int round = 0; round < Rounds; round++)
        {
            foreach (var mode in round % 2 == 0 ? modes : modes.Reverse())
            {
                progress($"steady state, round {round + 1} of {Rounds}: {mode.Name}");
                var clock = Stopwatch.StartNew();
                await Run(cluster, Spec(data, steps, mode.FaultTolerance));
                samples[mode].Add(clock.Elapsed.TotalMilliseconds / steps);
            }
        }
        var steady = modes.Select(m => new Steady(m, Median(samples[m]))).ToList();

        var failures = new List<Failure>();
        foreach (var mode in new[] { none, ec1, ec2, checkpoint })
        {
            progress($"silo killed mid-run: {mode.Name}");
            failures.Add(await KillASilo(cluster, data, 4 * steps, mode, steady.Single(s => s.Mode == mode).MsPerStep, progress));
            if (cluster.Silos.Count < silos) await cluster.StartSilo(); // back to full strength for the next mode
            await cluster.WaitForActiveSilos(silos);
        }
        return (steady, failures, checkpointSeconds, interval);
    }

    const int Rounds = 3;

    static double Median(List<double> xs) => xs.Order().ElementAt(xs.Count / 2);

    /// <summary>The time for every shard of a job to checkpoint itself once, as the worker does at each interval.</summary>
    async Task<double> TimeCheckpoint(ProcessCluster cluster, string data)
    {
        var job = await Run(cluster, Spec(data, 20, "{checkpoint: 1000000}"));
        var config = new ShardConfig(job.JobId, Shards, 0, Shards, Dim, 26L * TableRows, 1, 0.05f, 1_000_000);
        var store = new ShardedEmbeddingStore(cluster.Grains, config, Layout);
        var times = new List<double>();
        for (int i = 1; i <= 5; i++)
        {
            var clock = Stopwatch.StartNew();
            await store.Checkpoint(20 + i);
            times.Add(clock.Elapsed.TotalSeconds);
        }
        return Median(times);
    }

    async Task<Failure> KillASilo(ProcessCluster cluster, string data, int steps, Mode mode, double msPerStep, Action<string> progress)
    {
        long stepAtKill = -1;
        var clock = new Stopwatch();
        double recovered = double.NaN;
        try
        {
            var info = await Run(cluster, Spec(data, steps, mode.FaultTolerance), async j =>
            {
                var step = j.Progress?.Step ?? 0;
                // A quarter in, and never at the last report: a job that has ended loses nothing to a silo's death.
                if (stepAtKill < 0 && step >= steps / 4 && step < steps)
                {
                    var shard = cluster.Grains.GetGrain<IEmbeddingShardGrain>(ShardConfig.Key(j.JobId, 0, mode.K > 1 ? 1 : 0));
                    var port = SiloAddress.FromParsableString((await shard.Status()).Silo).Endpoint.Port;
                    stepAtKill = step;
                    cluster.KillSilo(port);
                    clock.Start();
                    progress($"  killed the silo on port {port} at step {step}");
                }
                else if (stepAtKill >= 0 && double.IsNaN(recovered) && step > stepAtKill) recovered = clock.Elapsed.TotalSeconds;
            });
            if (stepAtKill < 0)
                return new Failure(mode, double.NaN, double.NaN, double.NaN, -1, 0, "not measured: the job ended before a silo could be killed (give more --steps)");
            if (double.IsNaN(recovered)) recovered = clock.Elapsed.TotalSeconds;
            var events = await cluster.Grains.GetGrain<IJobGrain>(info.JobId).GetEvents();
            var rollback = events.FirstOrDefault(e => e.Kind == JobEventKind.RolledBack);
            var lost = rollback is { Step: { } from, ResumeStep: { } to } ? from - to : 0;
            var rebuilt = events.Where(e => e.Kind is JobEventKind.ShardRebuilt or JobEventKind.ParityRebuilt).ToList();
            // A rollback restores every shard's checkpoint; a rebuild reads the group's survivors.
            var bytes = rollback is not null ? Shards * (long)Layout.ShardBytes : rebuilt.Sum(e => e.Bytes ?? 0);
            var work = rollback is not null ? (rollback.Seconds ?? 0) + lost * msPerStep / 1000 : rebuilt.Select(e => e.Seconds ?? 0).DefaultIfEmpty(0).Max();
            return new Failure(mode, recovered, info.Result!.LongestStepSeconds ?? double.NaN, work, lost, bytes, null);
        }
        catch (CliException e)
        {
            return new Failure(mode, double.NaN, double.NaN, double.NaN, -1, 0, $"job failed: {e.Message}");
        }
    }

    public void Print(IReadOnlyList<Steady> steady, IReadOnlyList<Failure> failures, double checkpointSeconds, int interval, double mttf, int steps)
    {
        AnsiConsole.MarkupLine($"[bold]orch bench ecrm[/]: DLRM (26 tables × {TableRows:N0} rows × dim {Dim}, {Shards} shard grains), batch {Batch}, one worker; steady state: median of {Rounds} alternating runs of {steps} steps; failures: runs of {4 * steps} steps, a silo killed a quarter in");
        var baseline = steady[0].MsPerStep;
        var table = new Table().Border(TableBorder.Simple).AddColumns("fault tolerance", "ms/step", "overhead vs none");
        foreach (var s in steady) table.AddRow(Markup.Escape(s.Mode.Name), $"{s.MsPerStep:F2}", $"{(s.MsPerStep / baseline - 1) * 100:+0.0;-0.0}%");
        AnsiConsole.Write(table);
        AnsiConsole.MarkupLine($"checkpoint: one takes {checkpointSeconds * 1000:F1} ms; with an MTTF of {mttf:F0} s Young/Daly gives √(2·δ·M) = every {interval} steps");
        var failed = new Table().Border(TableBorder.Simple).AddColumns("silo killed, fault tolerance", "kill → past the step reached", "longest step (stall)", "recovery work", "steps lost", "bytes read to recover");
        foreach (var f in failures)
            failed.AddRow(Markup.Escape(f.Mode.Name), f.Error is null ? $"{f.RecoverySeconds:F1} s" : Markup.Escape(f.Error),
                f.Error is null ? $"{f.StallSeconds:F2} s" : "-", f.Error is null ? $"{f.RecoveryWorkSeconds * 1000:F0} ms" : "-", f.StepsLost < 0 ? "-" : f.StepsLost.ToString(), f.BytesRead.ToString("N0"));
        AnsiConsole.Write(failed);
        var ec = steady.Where(s => s.Mode.R > 0).Select(s => s.MsPerStep - baseline).DefaultIfEmpty(0).Max();
        var ck = steady[^1].MsPerStep - baseline;
        var ecRecovery = failures.Where(f => f.Mode.R > 0 && f.Error is null).Select(f => f.RecoverySeconds).DefaultIfEmpty(double.NaN).Max();
        var ecWork = failures.Where(f => f.Mode.R > 0 && f.Error is null).Select(f => f.RecoveryWorkSeconds).DefaultIfEmpty(double.NaN).Max();
        var (ckRecovery, ckWork) = (failures[^1].RecoverySeconds, failures[^1].RecoveryWorkSeconds);
        AnsiConsole.MarkupLine($"ratios: erasure-coding overhead / checkpoint overhead = {(ck > 0 ? ec / ck : double.NaN):F2} (goal ≤ 0.5); checkpoint / erasure-coding recovery: " +
                               $"kill to past the step reached {ckRecovery / ecRecovery:F2}, recovery work {ckWork / ecWork:F1} (goal ≥ 5)");
    }
}
