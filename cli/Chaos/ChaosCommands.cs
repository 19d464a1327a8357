using System.Globalization;

namespace Orchestrator.Cli.Chaos;

/// <summary>
/// orch chaos: failure injection into a running cluster (its silos must run with --allow-chaos), and scored
/// scenarios on a local cluster of processes.
/// </summary>
public static class ChaosCommands
{
    public static Command Create()
    {
        var random = new Option<bool>("--random") { Description = "Pick the target at random" };
        var duration = new Option<string>("--for") { Description = "How long the fault lasts: 10s, 500ms, 1m", DefaultValueFactory = _ => "10s" };

        Command Fault(string name, string description, Argument<string?> target, Func<IChaosGrain, string?, ParseResult, Task<ChaosResult>> inject, params Option[] options)
        {
            var command = new Command(name, description) { target, random };
            foreach (var o in options) command.Options.Add(o);
            command.SetAction((p, ct) => Cli.Run(async () =>
            {
                var chosen = p.GetValue(target);
                if (chosen is null && !p.GetValue(random)) throw new UsageException($"give the target of {name}, or --random");
                await using var session = await ClusterSession.Connect(Cli.Connection(p), allowEmbedded: false, ct: ct);
                try
                {
                    var result = await inject(session.Grains.GetGrain<IChaosGrain>("cluster"), chosen, p);
                    AnsiConsole.MarkupLine($"[yellow]{Markup.Escape(result.What)}[/] at {result.At:HH:mm:ss.fff} UTC");
                    return 0;
                }
                catch (ChaosDisabledException e) { throw new CliException(e.Message); }
            }));
            return command;
        }

        var silo = new Argument<string?>("SILO") { Description = "Silo address as the cluster lists it (HOST:PORT@GENERATION)", Arity = ArgumentArity.ZeroOrOne };
        var killSilo = Fault(ChaosFaults.Name(ChaosFault.KillSilo), "Crash a silo (SIGKILL to its own process, no graceful shutdown)", silo, (c, t, _) => c.KillSilo(t));

        Argument<string?> Node() => new("NODE") { Description = "Node id (see 'orch nodes')", Arity = ArgumentArity.ZeroOrOne };
        var killWorker = Fault(ChaosFaults.Name(ChaosFault.KillWorker), "Crash a worker process (SIGKILL)", Node(), (c, t, _) => c.FaultNode(t, new NodeFault(FaultKind.KillWorker)));
        var hangWorker = Fault(ChaosFaults.Name(ChaosFault.HangWorker), "Freeze a worker process (SIGSTOP, SIGCONT when the time is up): no heartbeats, no work", Node(),
            (c, t, p) => c.FaultNode(t, new NodeFault(FaultKind.HangWorker, Seconds(p.GetValue(duration)!))), duration);
        var delay = new Option<string>("--delay") { Description = "Latency added to each of the node's calls: 200ms", DefaultValueFactory = _ => "200ms" };
        var slowNode = Fault(ChaosFaults.Name(ChaosFault.SlowNode), "Add latency to every call a worker makes", Node(),
            (c, t, p) => c.FaultNode(t, new NodeFault(FaultKind.SlowNode, Seconds(p.GetValue(duration)!), DelayMs: 1000 * Seconds(p.GetValue(delay)!))), delay, duration);
        var rate = new Option<double>("--rate") { Description = "Fraction of the node's calls dropped (0 to 1)", DefaultValueFactory = _ => 0.2 };
        var dropCalls = Fault(ChaosFaults.Name(ChaosFault.DropCalls), "Drop a fraction of a worker's calls (they fail as timed out)", Node(),
            (c, t, p) => c.FaultNode(t, new NodeFault(FaultKind.DropCalls, Seconds(p.GetValue(duration)!), Rate: Fraction(p.GetValue(rate)))), rate, duration);

        var job = new Argument<string>("JOB") { Description = "A running data-parallel job" };
        var rank = new Option<int>("--rank") { Description = "The rank that sends non-finite gradients", DefaultValueFactory = _ => 0 };
        var steps = new Option<int>("--steps") { Description = "For how many steps", DefaultValueFactory = _ => 3 };
        var nan = new Command(ChaosFaults.Name(ChaosFault.NanGradients), "Make one rank of a data-parallel job send non-finite gradients for some steps") { job, rank, steps };
        nan.SetAction((p, ct) => Cli.Run(async () =>
        {
            if (p.GetValue(steps) < 1) throw new UsageException("--steps must be at least 1");
            await using var session = await ClusterSession.Connect(Cli.Connection(p), allowEmbedded: false, ct: ct);
            try
            {
                var result = await session.Grains.GetGrain<IChaosGrain>("cluster").NanGradients(p.GetValue(job)!, p.GetValue(rank), p.GetValue(steps));
                AnsiConsole.MarkupLine($"[yellow]{Markup.Escape(result.What)}[/]: job {Markup.Escape(p.GetValue(job)!)} rank {p.GetValue(rank)}, {p.GetValue(steps)} steps");
                return 0;
            }
            catch (ChaosDisabledException e) { throw new CliException(e.Message); }
        }));

        var redisOutage = new Command(ChaosFaults.Name(ChaosFault.RedisOutage), "Pause Redis for a while: only inside 'orch chaos run', whose runner started Redis itself") { duration };
        redisOutage.SetAction((_, _) => Cli.Run(() => throw new UsageException("redis-outage pauses a redis-server this tool started: use it as a fault in a scenario run by 'orch chaos run'")));

        var file = new Argument<FileInfo>("SCENARIO") { Description = "Scenario file (see examples/chaos/)" };
        var seed = new Option<int?>("--seed") { Description = "Seed of the random choices and schedule (printed, so any run can be replayed)" };
        var web = new Option<int?>("--http-port") { Description = "Serve the first silo's pages (incidents, reliability, jobs) and the Orleans dashboard on this port while the scenario runs" };
        var reportFile = new Option<FileInfo?>("--report") { Description = "Also write the report as JSON: the cluster's incident log with each incident's cost, and every job's ETTR and time line" };
        var runScenario = new Command("run", "Start a local cluster (redis-server, silos and workers with --allow-chaos), submit the scenario's jobs, inject its faults, and print a scored report; exit 1 if an invariant fails") { file, seed, web, reportFile };
        runScenario.SetAction((p, ct) => Cli.Run(async () =>
        {
            var path = p.GetValue(file)!.FullName;
            var scenario = ChaosScenario.Load(path);
            var chosen = p.GetValue(seed) ?? scenario.Seed ?? Random.Shared.Next(1, 1_000_000);
            AnsiConsole.MarkupLine($"[bold]{Markup.Escape(scenario.Name)}[/]: seed {chosen}");
            if (p.GetValue(web) is < 1 or > 65535) throw new UsageException($"--http-port {p.GetValue(web)}: give a port from 1 to 65535");
            var report = await new ChaosRunner(scenario, chosen, line => AnsiConsole.MarkupLine($"[grey]{Markup.Escape(line)}[/]")).Run(ct, p.GetValue(web));
            report.Print(p.GetValue(file)!.ToString());
            if (p.GetValue(reportFile) is { } json)
            {
                await File.WriteAllTextAsync(json.FullName, System.Text.Json.JsonSerializer.Serialize(new { report.Scenario, report.Seed, report.Summary, report.Logged, report.Histories }, ApiJson.Options), ct);
                AnsiConsole.MarkupLine($"report written to {Markup.Escape(json.FullName)}");
            }
            return report.Passed ? 0 : 1;
        }));

        return new Command("chaos", "Failure injection (the cluster's silos must run with --allow-chaos) and scored chaos scenarios")
        {
            runScenario, killSilo, killWorker, hangWorker, slowNode, dropCalls, nan, redisOutage,
        };
    }

    /// <summary>"10s", "500ms", "1m" or plain seconds.</summary>
    public static double Seconds(string text)
    {
        var t = text.Trim().ToLowerInvariant();
        var (number, scale) = t.EndsWith("ms") ? (t[..^2], 0.001) : t.EndsWith('s') ? (t[..^1], 1.0) : t.EndsWith('m') ? (t[..^1], 60.0) : (t, 1.0);
        if (!double.TryParse(number, NumberStyles.Float, CultureInfo.InvariantCulture, out var value) || value <= 0 || value * scale > 3600)
            throw new UsageException($"'{text}' is not a duration up to an hour (for example 10s, 500ms, 1m)");
        return value * scale;
    }

    static double Fraction(double rate) => rate is > 0 and <= 1 ? rate : throw new UsageException($"--rate {rate}: give a fraction in (0, 1]");
}
