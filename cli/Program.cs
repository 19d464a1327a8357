using Orchestrator.Cli.Bench;
using Orchestrator.Cli.Chaos;
using Orchestrator.Cli.Data;
using Orchestrator.Cli.Jobs;
using Orchestrator.Cli.Reliability;
using Orchestrator.Cli.Simulation;
using Orchestrator.Core.Specs;

namespace Orchestrator.Cli;

/// <summary>The orch command: its root, the options every command shares, and how errors become exit codes. Each
/// feature folder contributes its own commands.</summary>
public static class Cli
{
    public static readonly Option<string?> Redis = new("--redis") { Description = "Reach the cluster through Redis at HOST:PORT (env ORCH_REDIS)", Recursive = true };
    public static readonly Option<string?> Gateway = new("--gateway")
    {
        Description = "Reach the cluster through silo gateway(s) HOST:PORT[,...] (env ORCH_GATEWAY). With neither: the embedded default at 127.0.0.1:30000", Recursive = true,
    };

    public static async Task<int> Main(string[] args)
    {
        if (!AnsiConsole.Profile.Capabilities.Interactive) AnsiConsole.Profile.Width = 200;
        var root = new RootCommand("orch: submit and watch training jobs on an Orchestrator cluster.\nExit codes: 0 ok, 1 a job failed or the cluster could not be reached, 2 bad arguments or an invalid spec.")
        {
            Redis, Gateway,
        };
        Command[] features = [.. JobCommands.Create(), .. LocalClusterCommands.Create(), BenchCommands.Create(), DataCommands.Create(), ChaosCommands.Create(),
            .. ReliabilityCommands.Create(), SimulateCommand.Create()];
        foreach (var command in features) root.Subcommands.Add(command);
        return await root.Parse(args).InvokeAsync();
    }

    /// <summary>The cluster the command names (flags, then ORCH_REDIS / ORCH_GATEWAY, then the embedded default).</summary>
    public static ClusterConnection Connection(ParseResult p)
    {
        try { return ClusterConnection.Resolve(p.GetValue(Redis), p.GetValue(Gateway)); }
        catch (ArgumentException e) { throw new UsageException(e.Message); }
    }

    /// <summary>Runs a command's action: 0 or its own code; 1 for an error the user can fix or an unreachable cluster;
    /// 2 for bad arguments or an invalid spec; 130 when interrupted.</summary>
    public static async Task<int> Run(Func<Task<int>> action)
    {
        try { return await action(); }
        catch (UsageException e) { return Error(e.Message, 2); }
        catch (CliException e) { return Error(e.Message, 1); }
        catch (SpecValidationException e) { return Error(e.Message, 2, "invalid job spec:" + Environment.NewLine); }
        catch (KeyNotFoundException e) { return Error(e.Message, 1); }
        catch (ArgumentException e) { return Error(e.Message, 2); }
        catch (OperationCanceledException) { AnsiConsole.MarkupLine("[yellow]interrupted[/]"); return 130; }
        catch (Exception e) when (Resilience.IsTransient(e))
        {
            return Error($"the cluster did not answer ({e.GetBaseException().Message}); check that its silos (and Redis) are running, then retry", 1);
        }
    }

    static int Error(string message, int code, string heading = "error: ")
    {
        AnsiConsole.MarkupLine($"[red]{Markup.Escape(heading)}[/]{Markup.Escape(message)}");
        return code;
    }
}

/// <summary>An error the user can fix; exits 1 with the message.</summary>
public class CliException(string message) : Exception(message);

/// <summary>Bad arguments or an invalid spec; exits 2.</summary>
public sealed class UsageException(string message) : CliException(message);
