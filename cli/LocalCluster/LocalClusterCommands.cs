using System.Reflection;
using Orchestrator.Cli.Jobs;
using Orchestrator.Core.Specs;

namespace Orchestrator.Cli.LocalCluster;

/// <summary>orch demo and orch up: the embedded default cluster (a silo and a worker in this process).</summary>
public static class LocalClusterCommands
{
    public static IEnumerable<Command> Create() => [Demo(), Up()];

    static Command Demo()
    {
        var epochs = new Option<int>("--epochs") { Description = "Epochs to train", DefaultValueFactory = _ => 5 };
        var devices = new Option<string?>("--devices") { Description = "Devices for the embedded node (default cpu:1)" };
        var http = new Option<int?>("--http-port") { Description = "Also serve the silo's pages (jobs, curves, nodes), API, Orleans dashboard and metrics on this port while the demo runs" };
        var demo = new Command("demo", "Start an embedded cluster (a silo and a worker in this process), train the Fashion-MNIST MLP example end to end and print its test accuracy") { epochs, devices, http };
        demo.SetAction((p, ct) => Cli.Run(async () =>
        {
            using var reader = new StreamReader(Assembly.GetExecutingAssembly().GetManifestResourceStream("demo.yaml")!);
            var root = SpecDocument.SetPath(JobSpecParser.ParseDocument(await reader.ReadToEndAsync(ct)), "train.epochs", p.GetValue(epochs).ToString());
            var spec = JobSpecParser.FromNode(SpecDocument.SetPath(root, "name", "demo-mlp"));
            await using var session = await ClusterSession.StartEmbedded(p.GetValue(devices), ct, keepRunning: false, httpPort: p.GetValue(http));
            AnsiConsole.MarkupLine($"[bold]Orchestrator demo[/]: {Markup.Escape(session.Description)}");
            AnsiConsole.MarkupLine($"Training [bold]{spec.Model.Type.ToString().ToLowerInvariant()} 784-{string.Join("-", spec.Model.Hidden)}-10[/] on Fashion-MNIST ({Markup.Escape(spec.Data.Path)}) for {spec.Train.Epochs} epochs, {spec.Train.Optimizer.ToString().ToLowerInvariant()} lr {spec.Train.Lr}, batch {spec.Train.BatchSize}");
            var ids = await JobSubmitter.SubmitAll(session.Grains, [spec], ct);
            return await JobWatcher.FollowAndSummarize(session.Grains, ids, ct);
        }));
        return demo;
    }

    static Command Up()
    {
        var devices = new Option<string?>("--devices") { Description = "Devices for the embedded node: cpu:N slots (default cpu:1) or cuda:N" };
        var http = new Option<int?>("--http-port") { Description = "Serve the silo's pages (jobs, curves, nodes, arrays, incidents, reliability), JSON API, Orleans dashboard (/dashboard) and Prometheus /metrics on this port, e.g. 8080" };
        var up = new Command("up", "Run the embedded default cluster (a silo with memory storage and a worker) until Ctrl-C; other orch commands reach it with no flags") { devices, http };
        up.SetAction((p, ct) => Cli.Run(async () =>
        {
            await using var session = await ClusterSession.StartEmbedded(p.GetValue(devices), ct, keepRunning: true, httpPort: p.GetValue(http));
            AnsiConsole.MarkupLine($"[green]{Markup.Escape(session.Description)} is up[/] at gateway 127.0.0.1:{ClusterConnection.DefaultGatewayPort}. Ctrl-C stops it (its jobs are kept in memory only).");
            await session.WaitForShutdown(ct);
            return 0;
        }));
        return up;
    }
}
