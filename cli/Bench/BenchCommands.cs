using Orchestrator.Core.Collectives;
using Orchestrator.Core.Specs;
using Orchestrator.Worker.Training;

namespace Orchestrator.Cli.Bench;

/// <summary>orch bench: benchmarks that print ratios against a baseline run side by side (fusion, all-reduce, Adasum, ECRM).</summary>
public static class BenchCommands
{
    public static Command Create()
    {
        // bench fusion
        var benchModel = new Option<string>("--model") { Description = "mlp (784-256-128-10) or cnn (conv32-conv64-fc128)", DefaultValueFactory = _ => "mlp" };
        benchModel.AcceptOnlyFromAmong("mlp", "cnn");
        var benchWidths = new Option<string>("--width") { Description = "Array widths K to measure, comma-separated", DefaultValueFactory = _ => "1,2,4,8,16" };
        var benchBatch = new Option<int>("--batch") { Description = "Per-job batch size", DefaultValueFactory = _ => 32 };
        var benchThreads = new Option<int?>("--threads") { Description = "TorchSharp intra-op threads (default: one per core)" };
        var benchSteps = new Option<int>("--steps") { Description = "Timed steps per round and configuration (after 10 warm-up steps)", DefaultValueFactory = _ => 100 };
        var benchRounds = new Option<int>("--rounds") { Description = "Alternating separate/fused rounds; the median of each is reported", DefaultValueFactory = _ => 5 };
        var benchOrchestrated = new Option<bool>("--orchestrated") { Description = "Also run each fused array as a K-job sweep through an embedded cluster and compare with the bare fused loop" };
        var benchFusion = new Command("fusion", "Fused arrays (HFTA) vs. the same K jobs trained one after another, side by side; samples/s and ratios")
        {
            benchModel, benchWidths, benchBatch, benchThreads, benchSteps, benchRounds, benchOrchestrated,
        };
        benchFusion.SetAction((p, ct) => Cli.Run(async () =>
        {
            var widths = ParseList(p.GetValue(benchWidths)!, "--width", 1, 256);
            var (model, batch, steps, rounds) = (p.GetValue(benchModel)!, p.GetValue(benchBatch), p.GetValue(benchSteps), p.GetValue(benchRounds));
            if (rounds is < 1 or > 100) throw new UsageException("--rounds must be 1 to 100");
            if (batch is < 1 or > 8192) throw new UsageException("--batch must be 1 to 8192");
            if (steps is < 1 or > 1_000_000) throw new UsageException("--steps must be 1 to 1000000");
            if (p.GetValue(benchThreads) is { } threads)
            {
                if (threads < 1) throw new UsageException("--threads must be at least 1");
                TorchSharp.torch.set_num_threads(threads);
            }
            var data = FashionMnist.Load(FashionMnistFiles.DefaultPath);
            FusionBenchmark.WarmUp(data, model, batch);
            await using var session = p.GetValue(benchOrchestrated) ? await ClusterSession.StartEmbedded("cpu:1", ct, keepRunning: false, maxArrayWidth: widths.Max()) : null;
            var rows = new List<FusionBenchmark.Row>();
            foreach (var k in widths)
            {
                AnsiConsole.MarkupLine($"[grey]K={k}: {k} separate jobs and the fused array, {rounds} alternating rounds...[/]");
                var (separate, fused) = FusionBenchmark.SeparateAndFused(data, model, k, batch, steps, rounds);
                double? orchestrated = null;
                if (session is not null)
                {
                    AnsiConsole.MarkupLine($"[grey]K={k}: fused array through the embedded cluster...[/]");
                    // The same number of steps as the bare fused loop ran in all its rounds.
                    orchestrated = await FusionBenchmark.Orchestrated(session, model, k, batch, steps * rounds, ct);
                }
                rows.Add(new(k, separate, fused, orchestrated));
            }
            FusionBenchmark.Print(model, batch, steps, rounds, TorchSharp.torch.get_num_threads(), rows);
            return 0;
        }));
        // bench allreduce
        var arRanks = new Option<string>("--ranks") { Description = "Rank counts to measure, comma-separated (each rank is a process)", DefaultValueFactory = _ => "2,4,8" };
        var arFloats = new Option<int>("--floats") { Description = "Floats per rank's buffer", DefaultValueFactory = _ => 4 * 1024 * 1024 };
        var arIterations = new Option<int>("--iterations") { Description = "Timed iterations per operation (after one warm-up)", DefaultValueFactory = _ => 5 };
        var arNoGrains = new Option<bool>("--no-grains") { Description = "Skip the grain-call baseline (it starts an embedded silo on the default ports)" };
        var benchAllReduce = new Command("allreduce", "All-reduce on the TCP data plane (ring sum, Adasum) with ranks as processes, beside a raw socket echo and the same sum through grain calls") { arRanks, arFloats, arIterations, arNoGrains };
        benchAllReduce.SetAction((p, ct) => Cli.Run(async () =>
        {
            var counts = ParseList(p.GetValue(arRanks)!, "--ranks", 2, 64);
            var floats = p.GetValue(arFloats);
            var iterations = p.GetValue(arIterations);
            if (floats is < 1 or > 256 * 1024 * 1024) throw new UsageException("--floats must be 1 to 268435456");
            if (iterations is < 1 or > 1000) throw new UsageException("--iterations must be 1 to 1000");
            AnsiConsole.MarkupLine("[grey]raw socket echo...[/]");
            var echo = await AllReduceBenchmark.SocketEchoBytesPerSecond(floats * 4, iterations);
            var results = new List<AllReduceBenchmark.RankResult>();
            await using var silo = p.GetValue(arNoGrains) ? null : await ClusterSession.StartEmbedded("cpu:1", ct, keepRunning: false);
            foreach (var n in counts)
            {
                AnsiConsole.MarkupLine($"[grey]{n} rank processes: ring sum and Adasum...[/]");
                results.AddRange(await AllReduceBenchmark.RunRanks(n, floats, iterations, ct));
                if (silo is null) continue;
                AnsiConsole.MarkupLine($"[grey]{n} rank processes: the same sum through grain calls...[/]");
                results.AddRange(await AllReduceBenchmark.RunRanks(n, floats, iterations, ct, viaGrains: true));
            }
            AllReduceBenchmark.Print(floats, echo, results);
            return 0;
        }));
        var rankFolder = new Option<string>("--folder") { Required = true };
        var rankIndex = new Option<int>("--rank") { Required = true };
        var rankSize = new Option<int>("--size") { Required = true };
        var viaGrains = new Option<bool>("--via-grains");
        var allReduceRank = new Command("allreduce-rank", "One rank of 'orch bench allreduce' (started by it)") { rankFolder, rankIndex, rankSize, arFloats, arIterations, viaGrains };
        allReduceRank.Hidden = true;
        allReduceRank.SetAction((p, ct) => p.GetValue(viaGrains)
            ? AllReduceBenchmark.RunGrainRank(p.GetValue(rankFolder)!, p.GetValue(rankIndex), p.GetValue(rankSize), p.GetValue(arFloats), p.GetValue(arIterations), ct)
            : AllReduceBenchmark.RunRank(p.GetValue(rankFolder)!, p.GetValue(rankIndex), p.GetValue(rankSize), p.GetValue(arFloats), p.GetValue(arIterations), ct));
        // bench adasum
        var adRanks = new Option<string>("--ranks") { Description = "Rank counts, comma-separated", DefaultValueFactory = _ => "1,4,8" };
        var adLrs = new Option<string>("--lr") { Description = "Learning rates, comma-separated (the same for average, sum and Adasum)", DefaultValueFactory = _ => "0.01,0.05" };
        var adSteps = new Option<int>("--steps") { Description = "Training steps", DefaultValueFactory = _ => 200 };
        var adEvery = new Option<int>("--every") { Description = "Evaluate test accuracy every N steps", DefaultValueFactory = _ => 25 };
        var adBatch = new Option<int>("--batch") { Description = "Per-worker batch size", DefaultValueFactory = _ => 32 };
        var benchAdasum = new Command("adasum", "Convergence of data-parallel training with average, sum and Adasum side by side (same lr)") { adRanks, adLrs, adSteps, adEvery, adBatch };
        benchAdasum.SetAction((p, ct) => Cli.Run(async () =>
        {
            var counts = ParseList(p.GetValue(adRanks)!, "--ranks", 1, 32);
            var lrs = new List<double>();
            foreach (var part in p.GetValue(adLrs)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                if (!double.TryParse(part, System.Globalization.CultureInfo.InvariantCulture, out var lr) || lr <= 0 || lr > 10) throw new UsageException($"--lr: '{part}' is not a learning rate in (0, 10]");
                lrs.Add(lr);
            }
            var (steps, every, batch) = (p.GetValue(adSteps), p.GetValue(adEvery), p.GetValue(adBatch));
            if (steps < 1 || every < 1 || batch < 1) throw new UsageException("--steps, --every and --batch must be positive");
            var data = FashionMnist.Load(FashionMnistFiles.DefaultPath);
            var curves = new List<AdasumBenchmark.Curve>();
            foreach (var lr in lrs)
                foreach (var n in counts)
                    foreach (var combine in new[] { GradientCombine.Average, GradientCombine.Sum, GradientCombine.Adasum })
                    {
                        AnsiConsole.MarkupLine($"[grey]lr {lr}, N={n}, {combine.ToString().ToLowerInvariant()}...[/]");
                        curves.Add(await AdasumBenchmark.Train(data, n, lr, combine, steps, every, batch, ct));
                    }
            AdasumBenchmark.Print(curves, batch);
            return 0;
        }));
        var ecrmSilos = new Option<int>("--silos") { Description = "Silo processes (k + r of each coding group: k = silos − r)", DefaultValueFactory = _ => 4 };
        var ecrmSteps = new Option<int>("--steps") { Description = "Training steps per run", DefaultValueFactory = _ => 400 };
        var ecrmMttf = new Option<double>("--mttf") { Description = "Mean time to failure in seconds for the Young/Daly checkpoint interval", DefaultValueFactory = _ => 600 };
        var ecrmRows = new Option<int>("--table-rows") { Description = "Rows in each of the 26 embedding tables (dim 16): the size checkpoints write and rebuilds read", DefaultValueFactory = _ => 2000 };
        var benchEcrm = new Command("ecrm", "A DLRM job on a local cluster of processes (redis-server, silos, a worker): unprotected, erasure-coded (r=1, r=2) and checkpointed at its Young/Daly interval, side by side; then each with a silo killed mid-run") { ecrmSilos, ecrmSteps, ecrmMttf, ecrmRows };
        benchEcrm.SetAction((p, ct) => Cli.Run(async () =>
        {
            var silos = p.GetValue(ecrmSilos);
            if (silos < 3) throw new UsageException($"--silos {silos}: need at least 3 (r = 2 needs k ≥ 1 beside its parities)");
            var rows = p.GetValue(ecrmRows);
            if (rows is < 100 or > 10_000_000) throw new UsageException($"--table-rows {rows}: give 100 to 10,000,000");
            var benchmark = new EcrmBenchmark(rows);
            var (steady, failures, delta, interval) = await benchmark.Measure(silos, p.GetValue(ecrmSteps), p.GetValue(ecrmMttf),
                line => AnsiConsole.MarkupLine($"[grey]{Markup.Escape(line)}[/]"));
            benchmark.Print(steady, failures, delta, interval, p.GetValue(ecrmMttf), p.GetValue(ecrmSteps));
            return 0;
        }));
        return new Command("bench", "Benchmarks that print ratios against a baseline run side by side") { benchFusion, benchAllReduce, benchAdasum, benchEcrm, allReduceRank };
    }

    static IReadOnlyList<int> ParseList(string text, string option, int min, int max)
    {
        var values = new List<int>();
        foreach (var part in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (!int.TryParse(part, out var v) || v < min || v > max) throw new UsageException($"{option}: '{part}' is not a whole number from {min} to {max}");
            values.Add(v);
        }
        return values.Count > 0 ? values : throw new UsageException($"{option}: give at least one value");
    }
}
