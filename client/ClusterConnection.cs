using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Orleans;
using Orleans.Configuration;
using Orleans.Hosting;

namespace Orchestrator.Client;

/// <summary>
/// How a client (worker or CLI) finds the cluster: through Redis (the membership table lists the gateways) or
/// an explicit gateway address (an embedded cluster, or a silo reached directly).
/// </summary>
public sealed record ClusterConnection(string? Redis, IReadOnlyList<IPEndPoint> Gateways)
{
    public const string ServiceId = "orchestrator";
    public const string ClusterId = "orchestrator";
    public const int DefaultSiloPort = 11111;
    public const int DefaultGatewayPort = 30000;

    /// <summary>The embedded default: a silo on this machine at the default gateway port.</summary>
    public static ClusterConnection Embedded => new(null, [new IPEndPoint(IPAddress.Loopback, DefaultGatewayPort)]);

    public bool IsEmbeddedDefault => Redis is null && Gateways.Count == 1 && Gateways[0].Equals(Embedded.Gateways[0]);

    public override string ToString() => Redis is not null ? $"redis {Redis}" : $"gateway {string.Join(",", Gateways)}";

    /// <summary>Flags win over environment variables (ORCH_REDIS, ORCH_GATEWAY); with neither, the embedded default.</summary>
    public static ClusterConnection Resolve(string? redis, string? gateway)
    {
        redis ??= NullIfEmpty(Environment.GetEnvironmentVariable("ORCH_REDIS"));
        gateway ??= redis is null ? NullIfEmpty(Environment.GetEnvironmentVariable("ORCH_GATEWAY")) : null;
        if (redis is not null) return new ClusterConnection(ParseEndpoint(redis, "--redis", 6379).ToString(), []);
        if (gateway is not null)
            return new ClusterConnection(null, gateway.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .Select(g => ParseEndpoint(g, "--gateway", DefaultGatewayPort)).ToList());
        return Embedded;
    }

    static string? NullIfEmpty(string? s) => string.IsNullOrWhiteSpace(s) ? null : s;

    public static IPEndPoint ParseEndpoint(string text, string what, int defaultPort)
    {
        var parts = text.Trim().Split(':');
        var host = parts[0] is "" or "localhost" ? "127.0.0.1" : parts[0];
        int port = defaultPort;
        if (parts.Length > 2 || (parts.Length == 2 && !int.TryParse(parts[1], out port)) || port is <= 0 or > 65535)
            throw new ArgumentException($"{what} '{text}' is not HOST:PORT (for example 127.0.0.1:{defaultPort})");
        return new IPEndPoint(ResolveAddress(host, what), port);
    }

    /// <summary>An IP address, or a host name resolved to its IPv4 address (a container's service name, say).</summary>
    public static IPAddress ResolveAddress(string host, string what)
    {
        if (IPAddress.TryParse(host, out var address)) return address;
        try
        {
            return Dns.GetHostAddresses(host).FirstOrDefault(a => a.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork)
                   ?? throw new ArgumentException($"{what} '{host}': the host has no IPv4 address");
        }
        catch (System.Net.Sockets.SocketException e)
        {
            throw new ArgumentException($"{what} '{host}': cannot resolve the host ({e.Message})");
        }
    }

    /// <summary>How long a client resends a call that failed transiently (see <see cref="TransientCallRetry"/>).</summary>
    public TimeSpan RetryBudget { get; init; } = TimeSpan.FromSeconds(30);

    public void ConfigureClient(IClientBuilder client)
    {
        client.Services.AddSingleton<IOutgoingGrainCallFilter>(new TransientCallRetry(RetryBudget));
        client.Configure<ClusterOptions>(o => { o.ClusterId = ClusterId; o.ServiceId = ServiceId; });
        // Orleans waits 30 s by default for a reply; a call into a crashed silo should fail (and be retried) sooner.
        client.Configure<ClientMessagingOptions>(o => o.ResponseTimeout = TimeSpan.FromSeconds(10));
        client.Configure<GatewayOptions>(o => o.GatewayListRefreshPeriod = TimeSpan.FromSeconds(2));
        if (Redis is not null)
            client.UseRedisClustering(Redis);
        else
            client.UseStaticClustering(Gateways.ToArray());
    }
}
