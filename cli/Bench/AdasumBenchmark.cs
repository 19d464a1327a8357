using System.Net;
using Orchestrator.Core.Collectives;
using Orchestrator.Core.DataPlane;
using Orchestrator.Core.Specs;
using Orchestrator.Worker.Training;

namespace Orchestrator.Cli.Bench;

/// <summary>
/// Convergence of data-parallel training with average, sum and Adasum side by side: Fashion-MNIST MLP
/// 784-256-10, SGD with momentum 0.9, per-worker batch 32, N ranks on loopback sockets in this process, the
/// same learning rate for all three (Horovod's guidance: no linear scaling for Adasum), test accuracy every few
/// steps.
/// </summary>
public static class AdasumBenchmark
{
    /// <param name="StepSplit">Rank 0's mean milliseconds per step in forward/backward, combining, and the optimizer.</param>
    public sealed record Curve(int Ranks, double Lr, GradientCombine Combine, IReadOnlyList<(long Step, double Accuracy)> Points,
        (double Compute, double Combine, double Optimizer) StepSplit);

    public static async Task<Curve> Train(FashionMnist data, int ranks, double lr, GradientCombine combine, int steps, int every, int batch, CancellationToken ct)
    {
        var spec = JobSpecParser.Parse($"name: adasum-bench\nmodel: {{type: mlp, hidden: [256]}}\ndata: {{dataset: fashion-mnist}}\n" +
                                       $"train: {{optimizer: sgd, lr: {lr}, momentum: 0.9, batchSize: {batch}, seed: 1, steps: {steps}}}");
        var listeners = Enumerable.Range(0, ranks).Select(_ => TcpRankTransport.BindListener(IPAddress.Loopback)).ToList();
        var membership = new RankMembership($"adasum-bench-{ranks}-{lr}-{combine}", 1, listeners.Select(l => l.LocalEndpoint).ToList());
        var transports = listeners.Select((l, r) => TcpRankTransport.Start(membership, r, l)).ToList();
        var points = new List<(long, double)>();
        (double, double, double) split = default;
        try
        {
            await Task.WhenAll(transports.Select((t, r) => Task.Run(async () =>
            {
                using var rank = new DataParallelRank(spec, data, r, ranks, new Collective(t), combine);
                while (rank.Step < steps)
                {
                    var loss = await rank.TrainStep(ct);
                    // Every rank holds the same parameters, so rank 0 speaks for all.
                    if (r == 0 && (rank.Step % every == 0 || rank.Step == steps))
                        points.Add((rank.Step, float.IsFinite(loss) ? rank.TestAccuracy() : double.NaN));
                }
                if (r == 0)
                {
                    var (compute, combineTime, optimizer) = rank.Time;
                    split = (1000 * compute / steps, 1000 * combineTime / steps, 1000 * optimizer / steps);
                }
            }, ct)));
        }
        finally
        {
            foreach (var t in transports) await t.DisposeAsync();
        }
        return new Curve(ranks, lr, combine, points, split);
    }

    public static void Print(IReadOnlyList<Curve> curves, int batch)
    {
        AnsiConsole.MarkupLine($"[bold]orch bench adasum[/]: Fashion-MNIST MLP 784-256-10, SGD momentum 0.9, per-worker batch {batch}, ranks on loopback sockets; test accuracy (10,000 images)");
        foreach (var group in curves.GroupBy(c => (c.Lr, c.Ranks)).OrderBy(g => g.Key.Lr).ThenBy(g => g.Key.Ranks))
        {
            var steps = group.First().Points.Select(p => p.Step).ToList();
            var table = new Table().Border(TableBorder.Markdown).AddColumn($"lr {group.Key.Lr}, N={group.Key.Ranks}: step");
            foreach (var c in group) table.AddColumn(c.Combine.ToString().ToLowerInvariant());
            for (int i = 0; i < steps.Count; i++)
                table.AddRow([steps[i].ToString(), .. group.Select(c => i < c.Points.Count ? Format(c.Points[i].Accuracy) : "-")]);
            AnsiConsole.Write(table);
        }
        var split = new Table().Border(TableBorder.Markdown).AddColumns("lr", "ranks", "combine", "forward+backward ms/step", "combine ms/step", "optimizer ms/step");
        foreach (var c in curves.Where(c => c.Ranks > 1).OrderBy(c => c.Lr).ThenBy(c => c.Ranks))
            split.AddRow($"{c.Lr}", $"{c.Ranks}", c.Combine.ToString().ToLowerInvariant(), $"{c.StepSplit.Compute:F2}", $"{c.StepSplit.Combine:F2}", $"{c.StepSplit.Optimizer:F2}");
        AnsiConsole.MarkupLine("Step time split on rank 0 (ranks share this machine's cores):");
        AnsiConsole.Write(split);
    }

    static string Format(double accuracy) => double.IsNaN(accuracy) ? "diverged" : $"{accuracy:F4}";
}
