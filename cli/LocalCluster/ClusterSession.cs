using System.Net.Sockets;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Orchestrator.Silo;
using Orchestrator.Worker;

namespace Orchestrator.Cli.LocalCluster;

/// <summary>
/// A connection to a cluster: a client of a running one, or an embedded one (a silo with memory storage and a
/// node agent, in this process) when no cluster runs and the command can use one.
/// </summary>
public sealed class ClusterSession : IAsyncDisposable
{
    readonly IHost _host;

    ClusterSession(IHost host, bool embedded, string description)
    {
        _host = host;
        IsEmbedded = embedded;
        Description = description;
    }

    public IGrainFactory Grains => _host.Services.GetRequiredService<IGrainFactory>();
    public bool IsEmbedded { get; }
    public string Description { get; }

    public static async Task<ClusterSession> Connect(ClusterConnection connection, bool allowEmbedded, string? devices = null, CancellationToken ct = default)
    {
        if (connection.IsEmbeddedDefault && !await Listening(connection.Gateways[0].Port))
        {
            if (!allowEmbedded)
                throw new CliException($"no cluster is running at {connection.Gateways[0]}: start one with 'orch up', or pass --redis HOST:PORT / --gateway HOST:PORT (or set ORCH_REDIS / ORCH_GATEWAY)");
            return await StartEmbedded(devices, ct, keepRunning: false);
        }
        var builder = Host.CreateApplicationBuilder();
        builder.Logging.SetMinimumLevel(LogLevel.Error);
        builder.UseOrleansClient(connection.ConfigureClient);
        var host = builder.Build();
        try
        {
            await host.StartAsync(ct);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            throw new CliException($"cannot reach the cluster through {connection}: {e.GetBaseException().Message}. Check that the silos are running and the address is right.");
        }
        return new ClusterSession(host, embedded: false, connection.ToString());
    }

    /// <summary>Starts a silo and a node agent in this process on the default ports; with <paramref name="httpPort"/>
    /// the silo also serves its pages, API, dashboard and metrics there.</summary>
    public static async Task<ClusterSession> StartEmbedded(string? devices, CancellationToken ct, bool keepRunning,
        int maxArrayWidth = Orchestrator.Core.Scheduling.PriorityBestFitPolicy.DefaultMaxArrayWidth, int? httpPort = null)
    {
        IReadOnlyList<string> deviceList;
        try { deviceList = NodeAgent.ParseDevices(devices, () => TorchSharp.torch.cuda.is_available() ? TorchSharp.torch.cuda.device_count() : 0); }
        catch (ArgumentException e) { throw new UsageException(e.Message); }
        if (httpPort is < 1 or > 65535) throw new UsageException($"--http-port {httpPort} is not a port (1 to 65535)");
        var host = SiloWeb.Build(new SiloSettings(Redis: null, MaxArrayWidth: maxArrayWidth), httpPort, builder =>
        {
            builder.Logging.SetMinimumLevel(keepRunning ? LogLevel.Information : LogLevel.Error);
            builder.Logging.AddFilter("Orleans", keepRunning ? LogLevel.Warning : LogLevel.Error);
            builder.Logging.AddFilter("Microsoft", LogLevel.Warning);
            builder.Logging.AddFilter("Polly", LogLevel.Warning); // not every retried call
            builder.Services.AddNodeAgent(new NodeAgentOptions("local", deviceList));
        });
        try
        {
            await host.StartAsync(ct);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            var ports = $"{ClusterConnection.DefaultGatewayPort} or {ClusterConnection.DefaultSiloPort}{(httpPort is int p ? $" or {p}" : "")}";
            throw new CliException($"could not start the embedded cluster: {e.GetBaseException().Message}. Is port {ports} taken?");
        }
        var pages = httpPort is int web ? $", pages at http://127.0.0.1:{web}/" : "";
        return new ClusterSession(host, embedded: true, $"embedded cluster (node 'local', devices {string.Join(",", deviceList)}{pages})");
    }

    public Task WaitForShutdown(CancellationToken ct) => _host.WaitForShutdownAsync(ct);

    static async Task<bool> Listening(int port)
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(1));
            await socket.ConnectAsync(System.Net.IPAddress.Loopback, port, timeout.Token);
            return true;
        }
        catch (Exception) { return false; }
    }

    public async ValueTask DisposeAsync()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(15));
        try { await _host.StopAsync(timeout.Token); }
        catch (Exception) { /* shutting down anyway */ }
        _host.Dispose();
    }
}
