using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Orchestrator.Grains;
using Xunit.Abstractions;

namespace Orchestrator.Tests.Infrastructure;

/// <summary>
/// A cluster of real processes for one test: redis-server, silos (Redis clustering and storage), workers, CLI
/// runs, and an Orleans client for the test's own observations. Disposing prints every process's last lines.
/// </summary>
public sealed class ProcessCluster(ITestOutputHelper output) : IAsyncDisposable
{
    readonly RedisServer _redis = new();
    readonly List<ChildProcess> _processes = [];
    IHost? _client;

    public string Redis => _redis.Address;
    public IGrainFactory Grains => _client!.Services.GetRequiredService<IGrainFactory>();

    public ChildProcess Track(ChildProcess process)
    {
        _processes.Add(process);
        return process;
    }

    public async Task<(ChildProcess Process, int SiloPort)> StartSilo(params string[] extra)
    {
        int siloPort = RedisServer.FreePort(), gatewayPort = RedisServer.FreePort();
        var silo = Track(ChildProcess.Dotnet($"silo-{siloPort}", Repo.Silo, ["--redis", Redis, "--silo-port", siloPort.ToString(),
            "--gateway-port", gatewayPort.ToString(), "--fast-failure-detection", "--node-timeout", "5", .. extra]));
        await silo.WaitForLine(l => l.Contains("silo ready"), TimeSpan.FromSeconds(60));
        return (silo, siloPort);
    }

    public ChildProcess StartWorker(string nodeId, string devices = "cpu:1", int? threads = null, params string[] extra) =>
        Track(ChildProcess.Dotnet($"worker-{nodeId}", Repo.Worker, ["--redis", Redis, "--node-id", nodeId, "--devices", devices,
            .. threads is { } t ? new[] { "--threads", t.ToString() } : [], .. extra]));

    public async Task ConnectClient()
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        builder.UseOrleansClient(new ClusterConnection(Redis, []).ConfigureClient);
        _client = builder.Build();
        await _client.StartAsync();
    }

    /// <summary>Submits a spec through the real CLI and returns the job id it printed.</summary>
    public async Task<string> SubmitWithCli(string yaml)
    {
        var spec = Path.Combine(Directory.CreateTempSubdirectory("spec").FullName, "job.yaml");
        await File.WriteAllTextAsync(spec, yaml);
        var cli = Track(ChildProcess.Dotnet("orch-submit", Repo.Cli, "submit", spec, "--redis", Redis));
        Assert.Equal(0, await cli.WaitForExit(TimeSpan.FromSeconds(60)));
        var line = cli.Output.Split('\n').Single(l => l.StartsWith("submitted "));
        return line.Split(' ')[1];
    }

    public async Task<JobInfo> WaitFor(string id, Func<JobInfo, bool> condition, string what, TimeSpan timeout, Action<JobInfo>? observe = null)
    {
        var retry = Resilience.Retry(TimeSpan.FromSeconds(20));
        var deadline = DateTime.UtcNow + timeout;
        JobInfo? info = null;
        while (DateTime.UtcNow < deadline)
        {
            try
            {
                info = await retry.ExecuteAsync(async _ => await Grains.GetGrain<IJobGrain>(id).GetInfo());
                observe?.Invoke(info);
                if (condition(info)) return info;
                if (info.State is JobState.Failed or JobState.Cancelled) break;
            }
            catch (Exception e) when (Resilience.IsTransient(e)) { }
            await Task.Delay(200);
        }
        throw new TimeoutException($"job {id} never became {what}; last: {info}");
    }

    public async Task<IReadOnlyList<JobEvent>> Events(string id)
    {
        var events = await Grains.GetGrain<IJobGrain>(id).GetEvents();
        foreach (var e in events) output.WriteLine($"{e.At:HH:mm:ss.fff} {e.Source} {e.Kind}: {e.Message}");
        return events;
    }

    public async ValueTask DisposeAsync()
    {
        if (_client is not null)
        {
            try { await _client.StopAsync(new CancellationTokenSource(TimeSpan.FromSeconds(5)).Token); } catch (Exception) { }
            _client.Dispose();
        }
        // ORCH_TEST_LOGS=DIR keeps every process's whole output there, for reading an incident's timeline.
        var keep = Environment.GetEnvironmentVariable("ORCH_TEST_LOGS");
        foreach (var p in _processes)
        {
            output.WriteLine($"----- {p.Name} -----\n{string.Join('\n', p.Output.Split('\n').TakeLast(40))}");
            if (keep is not null)
            {
                Directory.CreateDirectory(keep);
                await File.WriteAllTextAsync(Path.Combine(keep, $"{p.Name}.log"), p.Output);
            }
            p.Dispose();
        }
        _redis.Dispose();
    }
}
