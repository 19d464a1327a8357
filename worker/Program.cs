using System.CommandLine;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Orchestrator.Worker;

var redis = new Option<string?>("--redis") { Description = "Find the cluster through Redis at HOST:PORT (env ORCH_REDIS)" };
var gateway = new Option<string?>("--gateway") { Description = "Connect to silo gateway(s) HOST:PORT[,HOST:PORT] (env ORCH_GATEWAY); default 127.0.0.1:30000" };
var nodeId = new Option<string>("--node-id") { Description = "This node's id (default: the host name)", DefaultValueFactory = _ => Environment.MachineName.ToLowerInvariant() };
var devices = new Option<string?>("--devices") { Description = "Devices to offer: cpu:N for N CPU slots, cuda:N for N GPUs, or a list like cuda:0,cuda:2 (default: every GPU TorchSharp sees, else cpu:1)" };
var threads = new Option<int?>("--threads") { Description = "Intra-op threads for TorchSharp (default: one per core)" };
var dataAddress = new Option<string>("--data-address")
{
    Description = "IP address or host name on which ranks of data-parallel jobs serve their tensor endpoint and which peers dial (default 127.0.0.1; use this host's cluster-network address when workers run on several hosts)",
    DefaultValueFactory = _ => "127.0.0.1",
};

var httpPort = new Option<int?>("--http-port") { Description = "Serve /healthz (the process is up) and /readyz (the cluster answers this node's heartbeats) on this port, for probes. Off by default" };

var checkpointDir = new Option<string>("--checkpoint-dir")
{
    Description = "Directory of the checkpoint store (env ORCH_CHECKPOINT_DIR). Workers on several hosts must share it (NFS, a Kubernetes volume), so that a job moved to another node finds its checkpoints",
    DefaultValueFactory = _ => Environment.GetEnvironmentVariable("ORCH_CHECKPOINT_DIR") is { Length: > 0 } env ? env : NodeAgentOptions.DefaultCheckpointDirectory,
};
var allowChaos = new Option<bool>("--allow-chaos") { Description = "Apply failure injection (orch chaos ...) that reaches this worker: killing, hanging or slowing it. Off by default: faults are logged and ignored" };

var root = new RootCommand("Orchestrator worker: owns a node's devices, runs the assignments its node grain wants, trains with TorchSharp.")
{
    redis, gateway, nodeId, devices, threads, dataAddress, httpPort, checkpointDir, allowChaos,
};
root.SetAction(async (parse, ct) =>
{
    ClusterConnection connection;
    IReadOnlyList<string> deviceList;
    System.Net.IPAddress? dataPlane;
    try
    {
        dataPlane = ClusterConnection.ResolveAddress(parse.GetValue(dataAddress)!, "--data-address");
        // A shard call to a silo that died is resent until the shard is rebuilt elsewhere: give that a minute.
        connection = ClusterConnection.Resolve(parse.GetValue(redis), parse.GetValue(gateway)) with { RetryBudget = TimeSpan.FromSeconds(60) };
        deviceList = NodeAgent.ParseDevices(parse.GetValue(devices), () => TorchSharp.torch.cuda.is_available() ? TorchSharp.torch.cuda.device_count() : 0);
    }
    catch (ArgumentException e)
    {
        Console.Error.WriteLine($"error: {e.Message}");
        return 2;
    }
    try { new Orchestrator.Core.Checkpoints.FileCheckpointStore(parse.GetValue(checkpointDir)!).Probe(); }
    catch (Exception e) when (e is IOException or UnauthorizedAccessException)
    {
        Console.Error.WriteLine($"error: --checkpoint-dir {parse.GetValue(checkpointDir)} cannot be written: {e.Message}");
        return 2;
    }
    if (parse.GetValue(threads) is { } n) TorchSharp.torch.set_num_threads(n);
    if (parse.GetValue(httpPort) is < 1 or > 65535)
    {
        Console.Error.WriteLine($"error: --http-port {parse.GetValue(httpPort)} is not a port (1 to 65535)");
        return 2;
    }

    void Configure(IHostApplicationBuilder builder)
    {
        builder.Logging.AddFilter("Polly", LogLevel.Warning);
        builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
        builder.Logging.AddSimpleConsole(o => o.TimestampFormat = "HH:mm:ss.fff "); // incidents are read by their times
        builder.UseOrleansClient(client =>
        {
            connection.ConfigureClient(client);
            client.UseConnectionRetryFilter<RetryConnectingFilter>();
            client.Services.AddSingleton<IOutgoingGrainCallFilter>(sp => sp.GetRequiredService<WorkerChaos>());
        });
        builder.Services.AddNodeAgent(new NodeAgentOptions(parse.GetValue(nodeId)!, deviceList) { DataPlaneAddress = dataPlane, AllowChaos = parse.GetValue(allowChaos), CheckpointDirectory = parse.GetValue(checkpointDir)! });
    }

    if (parse.GetValue(httpPort) is int port)
    {
        var web = WebApplication.CreateSlimBuilder();
        // Probes reach the worker where its peers do (its data-plane address).
        web.WebHost.UseKestrel(k => k.Listen(dataPlane, port));
        Configure(web);
        var app = web.Build();
        app.MapGet("/healthz", () => Results.Text("ok"));
        app.MapGet("/readyz", (NodeAgent agent) => agent.Readiness() is (true, _) ? Results.Text("ready") : Results.Text($"not ready: {agent.Readiness().Why}", statusCode: 503));
        await app.RunAsync(ct);
    }
    else
    {
        var builder = Host.CreateApplicationBuilder();
        Configure(builder);
        await builder.Build().RunAsync(ct);
    }
    return 0;
});
return await root.Parse(args).InvokeAsync();
