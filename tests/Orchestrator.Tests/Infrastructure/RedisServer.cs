using System.Net;
using System.Net.Sockets;

namespace Orchestrator.Tests.Infrastructure;

/// <summary>A real redis-server on a free loopback port, with persistence off, for one test class.</summary>
public sealed class RedisServer : IDisposable
{
    readonly ChildProcess _process;

    public int Port { get; }
    public string Address => $"127.0.0.1:{Port}";

    public RedisServer()
    {
        var binary = new[] { "/usr/bin/redis-server", "/usr/local/bin/redis-server" }.FirstOrDefault(File.Exists)
            ?? throw new InvalidOperationException("redis-server is not installed: run the README's test command (it installs it) or apt-get install -y redis-server");
        Port = FreePort();
        _process = ChildProcess.Start("redis", binary, "--port", Port.ToString(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no");
        _process.WaitForLine(l => l.Contains("Ready to accept connections"), TimeSpan.FromSeconds(20)).GetAwaiter().GetResult();
    }

    public static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }

    public void Dispose() => _process.Dispose();
}
