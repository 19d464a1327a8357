using System.CommandLine;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Orchestrator.Client;
using Orchestrator.Contracts;
using Orchestrator.Grains;
using Orchestrator.Silo;

var redis = new Option<string?>("--redis") { Description = "Redis HOST:PORT for clustering and grain storage (env ORCH_REDIS). Without it: one local silo with memory storage." };
var siloPort = new Option<int>("--silo-port") { Description = "Port for silo-to-silo traffic", DefaultValueFactory = _ => ClusterConnection.DefaultSiloPort };
var gatewayPort = new Option<int>("--gateway-port") { Description = "Port clients (workers, CLI) connect to", DefaultValueFactory = _ => ClusterConnection.DefaultGatewayPort };
var advertise = new Option<string>("--advertise") { Description = "IP address or host name other silos and clients reach this silo at", DefaultValueFactory = _ => "127.0.0.1" };
var fast = new Option<bool>("--fast-failure-detection") { Description = "Declare crashed silos dead in ~1-2 s instead of ~10-12 s (tests, chaos runs on one machine)" };
var maxArrayWidth = new Option<int>("--max-array-width") { Description = "Most compatible small jobs fused into one array on one device (1 disables fusion)", DefaultValueFactory = _ => Orchestrator.Core.Scheduling.PriorityBestFitPolicy.DefaultMaxArrayWidth };
var allowChaos = new Option<bool>("--allow-chaos") { Description = "Accept failure injection (orch chaos ...): crashing silos, killing, hanging or slowing workers. Off by default; every silo of a chaos cluster needs it" };
var httpPort = new Option<int?>("--http-port") { Description = "Serve Orchestrator's pages (/), their JSON API (/api), the Orleans dashboard (/dashboard), Prometheus metrics (/metrics) and /healthz, /readyz on this port (env ORCH_HTTP_PORT). Off by default" };
var heartbeatTimeout = new Option<double>("--node-timeout") { Description = "Seconds without a heartbeat before a node is declared dead", DefaultValueFactory = _ => 5 };

var root = new RootCommand("Orchestrator silo: hosts the job, node and scheduler grains. Start it N times with --redis (distinct ports) to form one cluster.")
{
    redis, siloPort, gatewayPort, advertise, fast, heartbeatTimeout, maxArrayWidth, allowChaos, httpPort,
};
root.SetAction(async (parse, ct) =>
{
    var redisAddress = parse.GetValue(redis) ?? Environment.GetEnvironmentVariable("ORCH_REDIS");
    if (parse.GetValue(heartbeatTimeout) is var t && t <= 0)
    {
        Console.Error.WriteLine("error: --node-timeout must be positive");
        return 2;
    }
    if (parse.GetValue(maxArrayWidth) is < 1 or > 1024)
    {
        Console.Error.WriteLine("error: --max-array-width must be 1 to 1024");
        return 2;
    }
    var settings = new SiloSettings(string.IsNullOrWhiteSpace(redisAddress) ? null : redisAddress,
        parse.GetValue(siloPort), parse.GetValue(gatewayPort), parse.GetValue(advertise)!, parse.GetValue(fast),
        TimeSpan.FromSeconds(parse.GetValue(heartbeatTimeout)), parse.GetValue(maxArrayWidth), parse.GetValue(allowChaos));
    var web = parse.GetValue(httpPort) ?? (int.TryParse(Environment.GetEnvironmentVariable("ORCH_HTTP_PORT"), out var envPort) ? envPort : null);
    if (web is < 1 or > 65535)
    {
        Console.Error.WriteLine($"error: --http-port {web} is not a port (1 to 65535)");
        return 2;
    }
    var host = SiloWeb.Build(settings, web, ConfigureLogging);
    await host.StartAsync(ct);
    Console.WriteLine($"silo ready: silo port {settings.SiloPort}, gateway port {settings.GatewayPort}, {(settings.Redis is null ? "embedded (memory storage)" : $"redis {settings.Redis}")}{(web is int p ? $", pages and dashboard at http://{settings.AdvertisedAddress}:{p}/" : "")}");
    await host.WaitForShutdownAsync(ct);
    return 0;
});
return await root.Parse(args).InvokeAsync();

static void ConfigureLogging(IHostApplicationBuilder builder)
{
    builder.Logging.AddFilter("Polly", LogLevel.Warning);
    builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
    builder.Logging.AddSimpleConsole(o => o.TimestampFormat = "HH:mm:ss.fff "); // incidents are read by their times
}
