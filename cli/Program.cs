using System.CommandLine;
using System.Reflection;
using Orchestrator.Cli;
using Orchestrator.Core.Specs;
using Orchestrator.Grains;
using Spectre.Console;

if (!AnsiConsole.Profile.Capabilities.Interactive) AnsiConsole.Profile.Width = 200;

var redis = new Option<string?>("--redis") { Description = "Reach the cluster through Redis at HOST:PORT (env ORCH_REDIS)", Recursive = true };
var gateway = new Option<string?>("--gateway") { Description = "Reach the cluster through silo gateway(s) HOST:PORT[,...] (env ORCH_GATEWAY). With neither: the embedded default at 127.0.0.1:30000", Recursive = true };
ClusterConnection Connection(ParseResult p)
{
    try { return ClusterConnection.Resolve(p.GetValue(redis), p.GetValue(gateway)); }
    catch (ArgumentException e) { throw new UsageException(e.Message); }
}

// One-shot reads and commands: transient failures (a silo failing over) are retried for a while.
var calls = Resilience.Retry(TimeSpan.FromSeconds(20));

// submit
var file = new Argument<FileInfo>("FILE") { Description = "Job spec, YAML or JSON (see README: job-spec reference)" };
var sets = new Option<string[]>("--set") { Description = "Override a field: --set train.lr=0.1 (repeatable)", AllowMultipleArgumentsPerToken = false };
var sweeps = new Option<string[]>("--sweep") { Description = "One job per value: --sweep train.lr=0.01,0.1 (repeatable: the product of all sweeps)" };
var wait = new Option<bool>("--wait") { Description = "Follow the jobs with live progress until they end; exit 1 if any fails" };
var skipDataCheck = new Option<bool>("--skip-data-check") { Description = "Do not check data.path here (when the data lives only on the workers)" };
var submit = new Command("submit", "Validate a job spec and submit it (or a sweep of it)") { file, sets, sweeps, wait, skipDataCheck };
submit.SetAction((p, ct) => Run(async () =>
{
    var specs = JobSubmitter.LoadSpecs(p.GetValue(file)!, p.GetValue(sets) ?? [], p.GetValue(sweeps) ?? [], !p.GetValue(skipDataCheck));
    await using var session = await ClusterSession.Connect(Connection(p), allowEmbedded: true, ct: ct);
    var follow = p.GetValue(wait);
    if (session.IsEmbedded)
    {
        AnsiConsole.MarkupLine($"[grey]No cluster is running: using an {Markup.Escape(session.Description)} until the jobs end ('orch up' keeps one running).[/]");
        follow = true;
    }
    var ids = await JobSubmitter.SubmitAll(session.Grains, specs, ct);
    return follow ? await FollowAndSummarize(session.Grains, ids, ct) : 0;
}));

// demo
var demoEpochs = new Option<int>("--epochs") { Description = "Epochs to train", DefaultValueFactory = _ => 5 };
var demoDevices = new Option<string?>("--devices") { Description = "Devices for the embedded node (default cpu:1)" };
var demoHttp = new Option<int?>("--http-port") { Description = "Also serve the silo's pages (jobs, curves, nodes), API, Orleans dashboard and metrics on this port while the demo runs" };
var demo = new Command("demo", "Start an embedded cluster (a silo and a worker in this process), train the Fashion-MNIST MLP example end to end and print its test accuracy") { demoEpochs, demoDevices, demoHttp };
demo.SetAction((p, ct) => Run(async () =>
{
    using var reader = new StreamReader(Assembly.GetExecutingAssembly().GetManifestResourceStream("demo.yaml")!);
    var root = SpecDocument.SetPath(JobSpecParser.ParseDocument(await reader.ReadToEndAsync(ct)), "train.epochs", p.GetValue(demoEpochs).ToString());
    var spec = JobSpecParser.FromNode(SpecDocument.SetPath(root, "name", "demo-mlp"));
    await using var session = await ClusterSession.StartEmbedded(p.GetValue(demoDevices), ct, keepRunning: false, httpPort: p.GetValue(demoHttp));
    AnsiConsole.MarkupLine($"[bold]Orchestrator demo[/]: {Markup.Escape(session.Description)}");
    AnsiConsole.MarkupLine($"Training [bold]{spec.Model.Type.ToString().ToLowerInvariant()} 784-{string.Join("-", spec.Model.Hidden)}-10[/] on Fashion-MNIST ({Markup.Escape(spec.Data.Path)}) for {spec.Train.Epochs} epochs, {spec.Train.Optimizer.ToString().ToLowerInvariant()} lr {spec.Train.Lr}, batch {spec.Train.BatchSize}");
    var ids = await JobSubmitter.SubmitAll(session.Grains, [spec], ct);
    return await FollowAndSummarize(session.Grains, ids, ct);
}));

// up
var upDevices = new Option<string?>("--devices") { Description = "Devices for the embedded node: cpu:N slots (default cpu:1) or cuda:N" };
var upHttp = new Option<int?>("--http-port") { Description = "Serve the silo's pages (jobs, curves, nodes, arrays, incidents, reliability), JSON API, Orleans dashboard (/dashboard) and Prometheus /metrics on this port, e.g. 8080" };
var up = new Command("up", "Run the embedded default cluster (a silo with memory storage and a worker) until Ctrl-C; other orch commands reach it with no flags") { upDevices, upHttp };
up.SetAction((p, ct) => Run(async () =>
{
    await using var session = await ClusterSession.StartEmbedded(p.GetValue(upDevices), ct, keepRunning: true, httpPort: p.GetValue(upHttp));
    AnsiConsole.MarkupLine($"[green]{Markup.Escape(session.Description)} is up[/] at gateway 127.0.0.1:{ClusterConnection.DefaultGatewayPort}. Ctrl-C stops it (its jobs are kept in memory only).");
    await session.WaitForShutdown(ct);
    return 0;
}));

// jobs
var jobs = new Command("jobs", "List jobs with state, progress and accuracy");
jobs.SetAction((p, ct) => Run(async () =>
{
    await using var session = await ClusterSession.Connect(Connection(p), allowEmbedded: false, ct: ct);
    Views.Jobs(await calls.ExecuteAsync(async _ => await session.Grains.GetGrain<IJobIndexGrain>(SchedulerKeys.Cluster).List(), ct));
    return 0;
}));

// job ID
var jobId = new Argument<string>("ID") { Description = "Job id (see 'orch jobs')" };
var follow = new Option<bool>("--follow", "-f") { Description = "Show live progress until the job ends" };
var job = new Command("job", "Show a job: state, placement, progress, result, recent events") { jobId, follow };
job.SetAction((p, ct) => Run(async () =>
{
    await using var session = await ClusterSession.Connect(Connection(p), allowEmbedded: false, ct: ct);
    var grain = session.Grains.GetGrain<IJobGrain>(p.GetValue(jobId)!);
    if (p.GetValue(follow)) return await FollowAndSummarize(session.Grains, [p.GetValue(jobId)!], ct);
    Views.Job(await calls.ExecuteAsync(async _ => await grain.GetInfo(), ct), await calls.ExecuteAsync(async _ => await grain.GetEvents(), ct));
    return 0;
}));

// events / logs
Command EventsCommand(string name)
{
    var id = new Argument<string>("ID") { Description = "Job id" };
    var cmd = new Command(name, "Show a job's event history: who did what, when") { id };
    cmd.SetAction((p, ct) => Run(async () =>
    {
        await using var session = await ClusterSession.Connect(Connection(p), allowEmbedded: false, ct: ct);
        Views.Events(await calls.ExecuteAsync(async _ => await session.Grains.GetGrain<IJobGrain>(p.GetValue(id)!).GetEvents(), ct));
        return 0;
    }));
    return cmd;
}

// cancel
var cancelId = new Argument<string>("ID") { Description = "Job id" };
var cancel = new Command("cancel", "Cancel a job; a running worker stops at its next report") { cancelId };
cancel.SetAction((p, ct) => Run(async () =>
{
    await using var session = await ClusterSession.Connect(Connection(p), allowEmbedded: false, ct: ct);
    var info = await calls.ExecuteAsync(async _ => await session.Grains.GetGrain<IJobGrain>(p.GetValue(cancelId)!).Cancel(Environment.UserName), ct);
    AnsiConsole.MarkupLine($"{Markup.Escape(info.JobId)}: {JobWatcher.StateMarkup(info.State)}");
    return 0;
}));

// nodes
var nodes = new Command("nodes", "List nodes: health, devices, what runs where, last heartbeat");
nodes.SetAction((p, ct) => Run(async () =>
{
    await using var session = await ClusterSession.Connect(Connection(p), allowEmbedded: false, ct: ct);
    var scheduler = await calls.ExecuteAsync(async _ => await session.Grains.GetGrain<ISchedulerGrain>(SchedulerKeys.Cluster).GetInfo(), ct);
    var infos = await calls.ExecuteAsync(async _ => await Task.WhenAll(scheduler.Nodes.Select(n => session.Grains.GetGrain<INodeGrain>(n).GetInfo())), ct);
    Views.Nodes(infos);
    if (scheduler.Queue.Count > 0) AnsiConsole.MarkupLine($"{scheduler.Queue.Count} job(s) waiting for a device");
    return 0;
}));

// incidents
var incidentCount = new Option<int>("--last") { Description = "How many of the latest incidents", DefaultValueFactory = _ => 50 };
var incidents = new Command("incidents", "The cluster's incident log: every failure it noticed (node lost, silo crash, job failures by cause, preemptions, state-store outages), with counts per category") { incidentCount };
incidents.SetAction((p, ct) => Run(async () =>
{
    if (p.GetValue(incidentCount) is < 1 or > 10_000) throw new UsageException($"--last: give 1 to {10_000}");
    await using var session = await ClusterSession.Connect(Connection(p), allowEmbedded: false, ct: ct);
    Views.Incidents(await calls.ExecuteAsync(async _ => await session.Grains.GetGrain<IIncidentLogGrain>(SchedulerKeys.Cluster).List(p.GetValue(incidentCount)), ct));
    return 0;
}));

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
benchFusion.SetAction((p, ct) => Run(async () =>
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
    var data = Orchestrator.Worker.Training.FashionMnist.Load(FashionMnistFiles.DefaultPath);
    Orchestrator.Cli.Bench.FusionBenchmark.WarmUp(data, model, batch);
    await using var session = p.GetValue(benchOrchestrated) ? await ClusterSession.StartEmbedded("cpu:1", ct, keepRunning: false, maxArrayWidth: widths.Max()) : null;
    var rows = new List<Orchestrator.Cli.Bench.FusionBenchmark.Row>();
    foreach (var k in widths)
    {
        AnsiConsole.MarkupLine($"[grey]K={k}: {k} separate jobs and the fused array, {rounds} alternating rounds...[/]");
        var (separate, fused) = Orchestrator.Cli.Bench.FusionBenchmark.SeparateAndFused(data, model, k, batch, steps, rounds);
        double? orchestrated = null;
        if (session is not null)
        {
            AnsiConsole.MarkupLine($"[grey]K={k}: fused array through the embedded cluster...[/]");
            // The same number of steps as the bare fused loop ran in all its rounds.
            orchestrated = await Orchestrator.Cli.Bench.FusionBenchmark.Orchestrated(session, model, k, batch, steps * rounds, ct);
        }
        rows.Add(new(k, separate, fused, orchestrated));
    }
    Orchestrator.Cli.Bench.FusionBenchmark.Print(model, batch, steps, rounds, TorchSharp.torch.get_num_threads(), rows);
    return 0;
}));
// bench allreduce
var arRanks = new Option<string>("--ranks") { Description = "Rank counts to measure, comma-separated (each rank is a process)", DefaultValueFactory = _ => "2,4,8" };
var arFloats = new Option<int>("--floats") { Description = "Floats per rank's buffer", DefaultValueFactory = _ => 4 * 1024 * 1024 };
var arIterations = new Option<int>("--iterations") { Description = "Timed iterations per operation (after one warm-up)", DefaultValueFactory = _ => 5 };
var arNoGrains = new Option<bool>("--no-grains") { Description = "Skip the grain-call baseline (it starts an embedded silo on the default ports)" };
var benchAllReduce = new Command("allreduce", "All-reduce on the TCP data plane (ring sum, Adasum) with ranks as processes, beside a raw socket echo and the same sum through grain calls") { arRanks, arFloats, arIterations, arNoGrains };
benchAllReduce.SetAction((p, ct) => Run(async () =>
{
    var counts = ParseList(p.GetValue(arRanks)!, "--ranks", 2, 64);
    var floats = p.GetValue(arFloats);
    var iterations = p.GetValue(arIterations);
    if (floats is < 1 or > 256 * 1024 * 1024) throw new UsageException("--floats must be 1 to 268435456");
    if (iterations is < 1 or > 1000) throw new UsageException("--iterations must be 1 to 1000");
    AnsiConsole.MarkupLine("[grey]raw socket echo...[/]");
    var echo = await Orchestrator.Cli.Bench.AllReduceBenchmark.SocketEchoBytesPerSecond(floats * 4, iterations);
    var results = new List<Orchestrator.Cli.Bench.AllReduceBenchmark.RankResult>();
    await using var silo = p.GetValue(arNoGrains) ? null : await ClusterSession.StartEmbedded("cpu:1", ct, keepRunning: false);
    foreach (var n in counts)
    {
        AnsiConsole.MarkupLine($"[grey]{n} rank processes: ring sum and Adasum...[/]");
        results.AddRange(await Orchestrator.Cli.Bench.AllReduceBenchmark.RunRanks(n, floats, iterations, ct));
        if (silo is null) continue;
        AnsiConsole.MarkupLine($"[grey]{n} rank processes: the same sum through grain calls...[/]");
        results.AddRange(await Orchestrator.Cli.Bench.AllReduceBenchmark.RunRanks(n, floats, iterations, ct, viaGrains: true));
    }
    Orchestrator.Cli.Bench.AllReduceBenchmark.Print(floats, echo, results);
    return 0;
}));
var rankFolder = new Option<string>("--folder") { Required = true };
var rankIndex = new Option<int>("--rank") { Required = true };
var rankSize = new Option<int>("--size") { Required = true };
var viaGrains = new Option<bool>("--via-grains");
var allReduceRank = new Command("allreduce-rank", "One rank of 'orch bench allreduce' (started by it)") { rankFolder, rankIndex, rankSize, arFloats, arIterations, viaGrains };
allReduceRank.Hidden = true;
allReduceRank.SetAction((p, ct) => p.GetValue(viaGrains)
    ? Orchestrator.Cli.Bench.AllReduceBenchmark.RunGrainRank(p.GetValue(rankFolder)!, p.GetValue(rankIndex), p.GetValue(rankSize), p.GetValue(arFloats), p.GetValue(arIterations), ct)
    : Orchestrator.Cli.Bench.AllReduceBenchmark.RunRank(p.GetValue(rankFolder)!, p.GetValue(rankIndex), p.GetValue(rankSize), p.GetValue(arFloats), p.GetValue(arIterations), ct));
// bench adasum
var adRanks = new Option<string>("--ranks") { Description = "Rank counts, comma-separated", DefaultValueFactory = _ => "1,4,8" };
var adLrs = new Option<string>("--lr") { Description = "Learning rates, comma-separated (the same for average, sum and Adasum)", DefaultValueFactory = _ => "0.01,0.05" };
var adSteps = new Option<int>("--steps") { Description = "Training steps", DefaultValueFactory = _ => 200 };
var adEvery = new Option<int>("--every") { Description = "Evaluate test accuracy every N steps", DefaultValueFactory = _ => 25 };
var adBatch = new Option<int>("--batch") { Description = "Per-worker batch size", DefaultValueFactory = _ => 32 };
var benchAdasum = new Command("adasum", "Convergence of data-parallel training with average, sum and Adasum side by side (same lr)") { adRanks, adLrs, adSteps, adEvery, adBatch };
benchAdasum.SetAction((p, ct) => Run(async () =>
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
    var data = Orchestrator.Worker.Training.FashionMnist.Load(FashionMnistFiles.DefaultPath);
    var curves = new List<Orchestrator.Cli.Bench.AdasumBenchmark.Curve>();
    foreach (var lr in lrs)
        foreach (var n in counts)
            foreach (var combine in new[] { Orchestrator.Core.Collectives.GradientCombine.Average, Orchestrator.Core.Collectives.GradientCombine.Sum, Orchestrator.Core.Collectives.GradientCombine.Adasum })
            {
                AnsiConsole.MarkupLine($"[grey]lr {lr}, N={n}, {combine.ToString().ToLowerInvariant()}...[/]");
                curves.Add(await Orchestrator.Cli.Bench.AdasumBenchmark.Train(data, n, lr, combine, steps, every, batch, ct));
            }
    Orchestrator.Cli.Bench.AdasumBenchmark.Print(curves, batch);
    return 0;
}));
var ecrmSilos = new Option<int>("--silos") { Description = "Silo processes (k + r of each coding group: k = silos − r)", DefaultValueFactory = _ => 4 };
var ecrmSteps = new Option<int>("--steps") { Description = "Training steps per run", DefaultValueFactory = _ => 400 };
var ecrmMttf = new Option<double>("--mttf") { Description = "Mean time to failure in seconds for the Young/Daly checkpoint interval", DefaultValueFactory = _ => 600 };
var ecrmRows = new Option<int>("--table-rows") { Description = "Rows in each of the 26 embedding tables (dim 16): the size checkpoints write and rebuilds read", DefaultValueFactory = _ => 2000 };
var benchEcrm = new Command("ecrm", "A DLRM job on a local cluster of processes (redis-server, silos, a worker): unprotected, erasure-coded (r=1, r=2) and checkpointed at its Young/Daly interval, side by side; then each with a silo killed mid-run") { ecrmSilos, ecrmSteps, ecrmMttf, ecrmRows };
benchEcrm.SetAction((p, ct) => Run(async () =>
{
    var silos = p.GetValue(ecrmSilos);
    if (silos < 3) throw new UsageException($"--silos {silos}: need at least 3 (r = 2 needs k ≥ 1 beside its parities)");
    var rows = p.GetValue(ecrmRows);
    if (rows is < 100 or > 10_000_000) throw new UsageException($"--table-rows {rows}: give 100 to 10,000,000");
    var benchmark = new Orchestrator.Cli.Bench.EcrmBenchmark(rows);
    var (steady, failures, delta, interval) = await benchmark.Measure(silos, p.GetValue(ecrmSteps), p.GetValue(ecrmMttf),
        line => AnsiConsole.MarkupLine($"[grey]{Markup.Escape(line)}[/]"));
    benchmark.Print(steady, failures, delta, interval, p.GetValue(ecrmMttf), p.GetValue(ecrmSteps));
    return 0;
}));
var bench = new Command("bench", "Benchmarks that print ratios against a baseline run side by side") { benchFusion, benchAllReduce, benchAdasum, benchEcrm, allReduceRank };

// data criteo-synth
var synthOut = new Option<FileInfo>("--out", "-o") { Description = "File to write (gzip when it ends in .gz)", Required = true };
var synthRows = new Option<int>("--rows") { Description = "Examples to write", DefaultValueFactory = _ => 100_000 };
var synthSeed = new Option<int>("--seed") { Description = "Seed of the hidden teacher model and of the examples (the same seed writes the same file)", DefaultValueFactory = _ => 1 };
var criteoSynth = new Command("criteo-synth", "Write a Criteo-format click log (label, 13 integers, 26 hashed categories, tab-separated) whose labels come from a hidden teacher model, so that a trained recommendation model measurably beats the base rate (about 25% clicks)") { synthOut, synthRows, synthSeed };
criteoSynth.SetAction((p, ct) => Run(async () =>
{
    var file = p.GetValue(synthOut)!;
    var rows = p.GetValue(synthRows);
    if (rows < 1) throw new UsageException($"--rows {rows}: give at least 1");
    if (file.Directory is { Exists: false } dir) throw new UsageException($"--out: folder '{dir.FullName}' does not exist");
    await AnsiConsole.Progress().StartAsync(async progress =>
    {
        var task = progress.AddTask(Markup.Escape(file.Name), maxValue: rows);
        await Task.Run(() => Orchestrator.Core.Recommendation.CriteoSynth.Write(file.FullName, rows, p.GetValue(synthSeed), new Progress<int>(n => task.Value = n)), ct);
    });
    AnsiConsole.MarkupLine($"wrote {rows:N0} examples to {Markup.Escape(file.FullName)} ({file.Length / 1e6:F1} MB)");
    return 0;
}));
var data = new Command("data", "Generate data sets") { criteoSynth };

var root = new RootCommand("orch: submit and watch training jobs on an Orchestrator cluster.\nExit codes: 0 ok, 1 a job failed or the cluster could not be reached, 2 bad arguments or an invalid spec.")
{
    redis, gateway, submit, jobs, job, EventsCommand("events"), EventsCommand("logs"), cancel, nodes, incidents, demo, up, bench, data,
    Orchestrator.Cli.Chaos.ChaosCommands.Create(Connection, Run), ReliabilityCommand.Create(Connection, calls, Run), Orchestrator.Cli.Simulation.SimulateCommand.Create(Run),
};
return await root.Parse(args).InvokeAsync();

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

static async Task<int> FollowAndSummarize(IGrainFactory grains, IReadOnlyList<string> ids, CancellationToken ct)
{
    var final = await JobWatcher.Follow(grains, ids, ct);
    foreach (var j in final)
    {
        var line = j.State == JobState.Succeeded
            ? $"[green]{Markup.Escape(j.JobId)} succeeded[/]: test accuracy [bold]{j.Result!.TestAccuracy:F4}[/] after {j.Result.TrainingEpochs} epoch{(j.Result.TrainingEpochs == 1 ? "" : "s")} ({j.Result.Steps} steps, {j.Result.TrainingSeconds:F1} s training, {j.Result.SamplesPerSecond:F0} samples/s)"
            : $"[red]{Markup.Escape(j.JobId)} {j.State.ToString().ToLowerInvariant()}[/]: {Markup.Escape(j.Failure?.Message ?? "")}";
        AnsiConsole.MarkupLine(line);
    }
    return final.All(j => j.State == JobState.Succeeded) ? 0 : 1;
}

static async Task<int> Run(Func<Task<int>> action)
{
    try { return await action(); }
    catch (UsageException e) { AnsiConsole.MarkupLine($"[red]error:[/] {Markup.Escape(e.Message)}"); return 2; }
    catch (CliException e) { AnsiConsole.MarkupLine($"[red]error:[/] {Markup.Escape(e.Message)}"); return 1; }
    catch (SpecValidationException e) { AnsiConsole.MarkupLine($"[red]invalid job spec:[/]{Environment.NewLine}{Markup.Escape(e.Message)}"); return 2; }
    catch (KeyNotFoundException e) { AnsiConsole.MarkupLine($"[red]error:[/] {Markup.Escape(e.Message)}"); return 1; }
    catch (ArgumentException e) { AnsiConsole.MarkupLine($"[red]error:[/] {Markup.Escape(e.Message)}"); return 2; }
    catch (Polly.Timeout.TimeoutRejectedException)
    {
        AnsiConsole.MarkupLine("[red]error:[/] the cluster stayed unreachable; check that its silos (and Redis) are running, then follow the jobs again with 'orch job ID --follow'");
        return 1;
    }
    catch (OperationCanceledException) { AnsiConsole.MarkupLine("[yellow]interrupted[/]"); return 130; }
    catch (Exception e) when (Resilience.IsTransient(e))
    {
        AnsiConsole.MarkupLine($"[red]error:[/] the cluster did not answer ({Markup.Escape(e.GetBaseException().Message)}); check that its silos are running, then retry");
        return 1;
    }
}
