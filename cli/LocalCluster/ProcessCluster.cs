using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Orchestrator.Cli.LocalCluster;

/// <param name="AllowChaos">Silos accept failure injection and workers apply it (--allow-chaos).</param>
/// <param name="Devices">Each worker's devices unless given when it starts.</param>
/// <param name="HttpPort">The first silo started serves its pages, API and dashboard on this port (null: no web host).</param>
/// <param name="SiloDll">orch-silo.dll to run (default: the one beside this program).</param>
/// <param name="WorkerDll">orch-worker.dll to run (default: the one beside this program).</param>
/// <param name="LogFolder">Where each process's output is written as NAME.log (default: a new temporary folder).</param>
/// <param name="ReportTails">On disposal, report each process's last lines through the progress callback (tests).</param>
public sealed record ProcessClusterOptions(bool AllowChaos = false, string Devices = "cpu:1", int? HttpPort = null, string? SiloDll = null,
    string? WorkerDll = null, string? LogFolder = null, bool ReportTails = false);

/// <summary>
/// A cluster of real processes on this machine, for benchmarks, chaos runs and the process tests: a redis-server on a
/// free loopback port (started with the cluster), silos (orch-silo, Redis clustering and storage, fast failure
/// detection) and workers (orch-worker), and an Orleans client. Silos and workers can be killed and started again,
/// Redis paused; other processes (CLI runs) can be tracked so they end with the cluster. Disposing stops everything.
/// </summary>
public sealed class ProcessCluster : IAsyncDisposable
{
    readonly List<ChildProcess> _processes = [];
    readonly ProcessClusterOptions _options;
    IHost? _client;

    /// <summary>Starts redis-server; silos and workers are started by the caller.</summary>
    public ProcessCluster(Action<string> progress, ProcessClusterOptions? options = null)
    {
        (Progress, _options) = (progress, options ?? new ProcessClusterOptions());
        LogFolder = _options.LogFolder ?? Directory.CreateTempSubdirectory("orch-local-cluster").FullName;
        Directory.CreateDirectory(LogFolder);
        CheckpointFolder = Directory.CreateTempSubdirectory("orch-checkpoints").FullName;
        (RedisProcess, RedisPort) = StartRedis(LogFolder);
        Track(RedisProcess);
        progress($"redis-server on {Redis}; process logs in {LogFolder}");
    }

    /// <summary>A redis-server on a free loopback port with persistence off, ready to accept connections.</summary>
    public static (ChildProcess Process, int Port) StartRedis(string? logFolder = null)
    {
        var binary = new[] { "/usr/bin/redis-server", "/usr/local/bin/redis-server" }.FirstOrDefault(File.Exists)
            ?? throw new CliException("redis-server is not installed: apt-get install -y redis-server (the README's set-up scripts install it)");
        var port = FreePort();
        var redis = ChildProcess.Start("redis", binary, ["--port", port.ToString(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], logFolder);
        redis.WaitForLine(l => l.Contains("Ready to accept connections"), TimeSpan.FromSeconds(20)).GetAwaiter().GetResult();
        return (redis, port);
    }

    /// <summary>Redis, <paramref name="silos"/> silos, <paramref name="workers"/> workers (nodes w1, w2, …) and a connected
    /// client; returns once every silo is active.</summary>
    public static async Task<ProcessCluster> Start(int silos, int workers, Action<string> progress, ProcessClusterOptions? options = null)
    {
        var cluster = new ProcessCluster(progress, options);
        for (int i = 0; i < silos; i++) await cluster.StartSilo();
        for (int i = 0; i < workers; i++) cluster.StartWorker($"w{i + 1}");
        await cluster.ConnectClient();
        await cluster.WaitForActiveSilos(silos);
        return cluster;
    }

    public Action<string> Progress { get; }
    public int RedisPort { get; }
    public string Redis => $"127.0.0.1:{RedisPort}";
    public ChildProcess RedisProcess { get; }
    public string LogFolder { get; }

    /// <summary>The checkpoint store every worker of this cluster shares (removed with the cluster).</summary>
    public string CheckpointFolder { get; }
    public IGrainFactory Grains => _client?.Services.GetRequiredService<IGrainFactory>() ?? throw new InvalidOperationException("connect the client first");

    /// <summary>Live silos by silo port.</summary>
    public Dictionary<int, ChildProcess> Silos { get; } = [];

    /// <summary>The latest worker of each node.</summary>
    public Dictionary<string, ChildProcess> Workers { get; } = [];

    /// <summary>Stops <paramref name="process"/> with the cluster.</summary>
    public ChildProcess Track(ChildProcess process)
    {
        lock (_processes) _processes.Add(process);
        return process;
    }

    public async Task<(ChildProcess Process, int SiloPort)> StartSilo(params string[] extra)
    {
        int port = FreePort(), gateway = FreePort();
        // The web port goes to the first silo started (and to the next one started if that one is replaced).
        var web = _options.HttpPort is { } h && Silos.Values.All(p => p.HasExited) ? h : (int?)null;
        Progress($"silo on port {port}{(web is { } w ? $", pages at http://127.0.0.1:{w}/" : "")}");
        var silo = Track(ChildProcess.Start($"silo-{port}", "dotnet", [_options.SiloDll ?? Beside("orch-silo.dll"), "--redis", Redis, "--silo-port", port.ToString(),
            "--gateway-port", gateway.ToString(), "--fast-failure-detection", "--node-timeout", "5", .. _options.AllowChaos ? new[] { "--allow-chaos" } : [],
            .. web is { } http ? new[] { "--http-port", http.ToString() } : [], .. extra], LogFolder));
        Silos[port] = silo;
        await silo.WaitForLine(l => l.Contains("silo ready"), TimeSpan.FromSeconds(60));
        return (silo, port);
    }

    /// <summary>Starts (or starts again, after it died) the worker of node <paramref name="node"/>.</summary>
    public ChildProcess StartWorker(string node, string? devices = null, params string[] extra)
    {
        Progress($"worker {node}");
        var worker = Track(ChildProcess.Start($"worker-{node}-{Environment.TickCount64}", "dotnet", [_options.WorkerDll ?? Beside("orch-worker.dll"),
            "--redis", Redis, "--node-id", node, "--devices", devices ?? _options.Devices, "--checkpoint-dir", CheckpointFolder,
            .. _options.AllowChaos ? new[] { "--allow-chaos" } : [], .. extra], LogFolder));
        Workers[node] = worker;
        return worker;
    }

    public async Task ConnectClient()
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Logging.SetMinimumLevel(LogLevel.Error);
        builder.UseOrleansClient(new ClusterConnection(Redis, []).ConfigureClient);
        _client = builder.Build();
        await _client.StartAsync();
    }

    /// <summary>Waits until the cluster's membership counts exactly <paramref name="count"/> active silos (a killed one
    /// declared dead, a started one joined), so that placement sees them all.</summary>
    public async Task WaitForActiveSilos(int count)
    {
        var management = Grains.GetGrain<IManagementGrain>(0);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while ((await management.GetHosts(onlyActive: true)).Count != count)
        {
            if (DateTime.UtcNow > deadline) throw new CliException($"the cluster did not settle at {count} active silos within 60 s");
            await Task.Delay(250);
        }
    }

    /// <summary>SIGKILL: the silo crashes, no graceful shutdown.</summary>
    public void KillSilo(int port)
    {
        Silos[port].Kill();
        Silos.Remove(port);
    }

    static string Beside(string dll) => Path.Combine(AppContext.BaseDirectory, dll);

    /// <summary>A loopback port nothing listens on now.</summary>
    public static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }

    public async ValueTask DisposeAsync()
    {
        if (_client is not null)
        {
            try { await _client.StopAsync(new CancellationTokenSource(TimeSpan.FromSeconds(5)).Token); }
            catch (Exception) { /* the cluster is going away anyway */ }
            _client.Dispose();
        }
        List<ChildProcess> processes;
        lock (_processes) processes = _processes.ToList();
        foreach (var p in processes)
        {
            if (_options.ReportTails) Progress($"----- {p.Name} -----\n{string.Join('\n', p.Output.Split('\n').TakeLast(40))}");
            p.Dispose();
        }
        try { Directory.Delete(CheckpointFolder, recursive: true); }
        catch (IOException) { /* a process still writing: the temporary folder goes with the machine's cleanup */ }
    }
}
