using Orchestrator.Cli.Jobs;
using System.Diagnostics;
using Orchestrator.Core.Specs;
using Orchestrator.Worker.Training;

namespace Orchestrator.Cli.Bench;

/// <summary>
/// Measures HFTA on this machine: K jobs trained as one fused array against the same K jobs trained one after
/// another (the common practice), side by side in one run; optionally also the fused array run through the
/// orchestrator (embedded cluster, a K-job sweep) against the bare fused loop, to show what orchestration costs.
/// </summary>
public static class FusionBenchmark
{
    public sealed record Row(int Width, double SeparateSamplesPerSecond, double FusedSamplesPerSecond, double? OrchestratedSamplesPerSecond)
    {
        public double Speedup => FusedSamplesPerSecond / SeparateSamplesPerSecond;
    }

    static JobSpec Spec(string model, int batch, int steps, double lr, int seed) => JobSpecParser.Parse(
        $"name: bench-{seed}\nmodel: {(model == "cnn" ? "{type: cnn, channels: [32, 64], fc: 128}" : "{type: mlp, hidden: [256, 128]}")}\n" +
        $"data: {{dataset: fashion-mnist}}\ntrain: {{steps: {steps}, batchSize: {batch}, lr: {lr}, seed: {seed}, checkpointEvery: {Math.Max(1, steps / 2)}}}");

    static IReadOnlyList<JobSpec> Members(string model, int width, int batch, int steps) =>
                // A sweep: learning rates differ per member and stay in a range where no member diverges.
        Enumerable.Range(0, width).Select(k => Spec(model, batch, steps, 0.005 * (1 + k % 4), seed: k + 1)).ToList();

    /// <summary>Loads the data and runs every kernel once, so the first measured configuration pays no start-up cost.</summary>
    public static void WarmUp(FashionMnist data, string model, int batch)
    {
        using var trainer = new ArrayTrainer(Members(model, 2, batch, 100), data);
        for (int i = 0; i < 20; i++) trainer.Step();
    }

    /// <summary>
    /// Separate and fused samples/s for one K. This machine's speed drifts between and within processes (the same
    /// step measured 0.9 and 1.5 ms), so the two are measured in alternating rounds and each reports its median.
    /// </summary>
    public static (double Separate, double Fused) SeparateAndFused(FashionMnist data, string model, int width, int batch, int steps, int rounds)
    {
        var specs = Members(model, width, batch, (rounds * steps + 10) * 2);
        var alone = specs.Select(s => new ArrayTrainer([s], data)).ToList();
        using var fused = new ArrayTrainer(specs, data);
        try
        {
            foreach (var t in alone.Append(fused)) for (int i = 0; i < 10; i++) t.Step();
            var separateRates = new List<double>();
            var fusedRates = new List<double>();
            for (int round = 0; round < rounds; round++)
            {
                var clock = Stopwatch.StartNew();
                foreach (var t in alone) for (int i = 0; i < steps; i++) t.Step();
                separateRates.Add((double)width * batch * steps / clock.Elapsed.TotalSeconds);
                clock.Restart();
                for (int i = 0; i < steps; i++) fused.Step();
                fusedRates.Add((double)width * batch * steps / clock.Elapsed.TotalSeconds);
            }
            return (Median(separateRates), Median(fusedRates));
        }
        finally
        {
            foreach (var t in alone) t.Dispose();
        }
    }

    static double Median(List<double> values)
    {
        values.Sort();
        return values.Count % 2 == 1 ? values[values.Count / 2] : (values[values.Count / 2 - 1] + values[values.Count / 2]) / 2;
    }

    /// <summary>The same array as a sweep through an embedded cluster; the members' own reported samples/s, summed.</summary>
    public static async Task<double> Orchestrated(ClusterSession session, string model, int width, int batch, int steps, CancellationToken ct)
    {
        var ids = new List<string>();
        var entries = new List<QueuedJob>();
        foreach (var spec in Members(model, width, batch, steps))
        {
            var id = $"bench-{Guid.NewGuid():n}"[..16];
            var job = session.Grains.GetGrain<IJobGrain>(id);
            await job.Submit(new JobSubmission(JobSpecJson.Write(spec), "bench", DeferEnqueue: true));
            entries.Add((await job.GetQueueEntry())!);
            ids.Add(id);
        }
        await session.Grains.GetGrain<ISchedulerGrain>(SchedulerKeys.Cluster).EnqueueMany(entries);
        while (true)
        {
            var infos = await Task.WhenAll(ids.Select(id => session.Grains.GetGrain<IJobGrain>(id).GetInfo()));
            if (infos.All(i => i.State.IsTerminal()))
            {
                if (infos.Any(i => i.State != JobState.Succeeded))
                    throw new CliException($"a benchmark job did not succeed: {infos.First(i => i.State != JobState.Succeeded).Failure?.Message}");
                if (infos.Select(i => i.Assignment!.ArrayId).Distinct().Count() != 1)
                    throw new CliException("the benchmark jobs were not fused into one array; is another job using the embedded node?");
                return infos.Sum(i => i.Result!.SamplesPerSecond);
            }
            await Task.Delay(200, ct);
        }
    }

    public static void Print(string model, int batch, int steps, int rounds, int threads, IReadOnlyList<Row> rows)
    {
        var table = new Table().Border(TableBorder.Markdown)
            .AddColumns("K", "separate samples/s", "fused samples/s", "fused / separate");
        var orchestrated = rows.Any(r => r.OrchestratedSamplesPerSecond is not null);
        if (orchestrated) table.AddColumns("orchestrated samples/s", "orchestrated / fused");
        foreach (var r in rows)
        {
            var cells = new List<string> { r.Width.ToString(), $"{r.SeparateSamplesPerSecond:F0}", $"{r.FusedSamplesPerSecond:F0}", $"{r.Speedup:F2}x" };
            if (orchestrated) cells.AddRange([$"{r.OrchestratedSamplesPerSecond:F0}", $"{r.OrchestratedSamplesPerSecond / r.FusedSamplesPerSecond:F3}"]);
            table.AddRow(cells.ToArray());
        }
        var name = model == "cnn" ? "CNN conv32-conv64-fc128" : "MLP 784-256-128-10";
        AnsiConsole.MarkupLine($"[bold]orch bench fusion[/]: {name}, per-job batch {batch}, median of {rounds} alternating rounds of {steps} steps, {threads} TorchSharp thread(s), {Environment.ProcessorCount} cores");
        AnsiConsole.Write(table);
    }
}
