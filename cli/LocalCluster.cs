using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Orchestrator.Grains;

namespace Orchestrator.Cli;

/// <summary>
/// A cluster of real processes on this machine for benchmarks and chaos runs: a redis-server on a free loopback
/// port, silos (orch-silo) and workers (orch-worker) from this CLI's folder, and a client. Silos and workers can be
/// killed and started again, Redis paused. Everything is stopped when disposed.
/// </summary>
public sealed class LocalCluster : IAsyncDisposable
{
    readonly List<(Process Process, string Name)> _processes = [];
    readonly string _folder = Directory.CreateTempSubdirectory("orch-local-cluster").FullName;
    IHost? _client;

    public int RedisPort { get; } = FreePort();
    public string Redis => $"127.0.0.1:{RedisPort}";
    public Dictionary<int, Process> Silos { get; } = []; // by silo port
    public IGrainFactory Grains => _client!.Services.GetRequiredService<IGrainFactory>();

    /// <param name="httpPort">The first silo serves its pages, API and dashboard on this port (null: no web host).</param>
    public static async Task<LocalCluster> Start(int silos, int workers, Action<string> progress, bool allowChaos = false, string devices = "cpu:1", int? httpPort = null)
    {
        var cluster = new LocalCluster { AllowChaos = allowChaos, Devices = devices, _httpPort = httpPort };
        progress($"redis-server on {cluster.Redis}; process logs in {cluster._folder}");
        cluster.RedisProcess = cluster.Launch("redis-server", "redis-server", ["--port", cluster.RedisPort.ToString(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]);
        await WaitForPort(cluster.RedisPort, TimeSpan.FromSeconds(20), "redis-server (install it with: apt-get install redis-server)");
        for (int i = 0; i < silos; i++) await cluster.StartSilo(progress);
        for (int i = 0; i < workers; i++) cluster.StartWorker($"w{i + 1}", progress);
        var builder = Host.CreateApplicationBuilder();
        builder.Logging.SetMinimumLevel(LogLevel.Error);
        builder.UseOrleansClient(new ClusterConnection(cluster.Redis, []).ConfigureClient);
        cluster._client = builder.Build();
        await cluster._client.StartAsync();
        await cluster.WaitForActiveSilos(silos);
        return cluster;
    }

    int? _httpPort;

    public bool AllowChaos { get; private init; }
    public string Devices { get; private init; } = "cpu:1";
    public Process? RedisProcess { get; private set; }
    public Dictionary<string, Process> Workers { get; } = []; // by node id
    public string LogFolder => _folder;

    public async Task<int> StartSilo(Action<string> progress)
    {
        int port = FreePort(), gateway = FreePort();
        // The web port goes to the first silo started (and to the next one started if that one is replaced).
        var web = _httpPort is { } h && Silos.Values.All(p => p.HasExited) ? h : (int?)null;
        progress($"silo on port {port}{(web is { } w ? $", pages at http://127.0.0.1:{w}/" : "")}");
        var silo = Launch($"silo-{port}", "dotnet", [Path.Combine(AppContext.BaseDirectory, "orch-silo.dll"), "--redis", Redis, "--silo-port", port.ToString(),
            "--gateway-port", gateway.ToString(), "--fast-failure-detection", "--node-timeout", "5", .. AllowChaos ? new[] { "--allow-chaos" } : [],
            .. web is { } port80 ? new[] { "--http-port", port80.ToString() } : []]);
        Silos[port] = silo;
        await WaitForPort(gateway, TimeSpan.FromSeconds(60), $"silo on port {port} (its output: {Path.Combine(_folder, $"silo-{port}.log")})");
        return port;
    }

    /// <summary>Starts (or starts again, after it died) the worker of node <paramref name="node"/>.</summary>
    public void StartWorker(string node, Action<string> progress)
    {
        progress($"worker {node}");
        Workers[node] = Launch($"worker-{node}-{Environment.TickCount64}", "dotnet",
            [Path.Combine(AppContext.BaseDirectory, "orch-worker.dll"), "--redis", Redis, "--node-id", node, "--devices", Devices]);
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
        Silos[port].Kill(entireProcessTree: true);
        Silos[port].WaitForExit(5000);
        Silos.Remove(port);
    }

    /// <summary>SIGSTOP or SIGCONT to a process this cluster started (a Redis outage, a frozen process).</summary>
    public static void Signal(Process process, string signal) =>
        Process.Start("kill", [$"-{signal}", process.Id.ToString()])?.WaitForExit();

    Process Launch(string name, string file, IEnumerable<string> args)
    {
        var info = new ProcessStartInfo(file) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) info.ArgumentList.Add(a);
        var process = Process.Start(info) ?? throw new CliException($"could not start {file}");
        var log = new StreamWriter(Path.Combine(_folder, $"{name}.log")) { AutoFlush = true };
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (log) log.WriteLine(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (log) log.WriteLine(e.Data); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        _processes.Add((process, name));
        return process;
    }

    static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }

    static async Task WaitForPort(int port, TimeSpan timeout, string what)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            try
            {
                using var c = new TcpClient();
                await c.ConnectAsync(IPAddress.Loopback, port);
                return;
            }
            catch (SocketException) { await Task.Delay(200); }
        }
        throw new CliException($"{what} did not start listening within {timeout.TotalSeconds:0} s");
    }

    public async ValueTask DisposeAsync()
    {
        if (_client is not null)
        {
            try { await _client.StopAsync(new CancellationTokenSource(TimeSpan.FromSeconds(5)).Token); } catch (Exception) { }
            _client.Dispose();
        }
        foreach (var (p, _) in _processes)
        {
            try { if (!p.HasExited) p.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
            p.Dispose();
        }
    }
}
