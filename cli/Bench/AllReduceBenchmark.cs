using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Orchestrator.Core.Collectives;
using Orchestrator.Core.DataPlane;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Orchestrator.Cli.Bench;

/// <summary>
/// All-reduce over the data plane with ranks as separate processes on this machine, beside a raw socket echo of
/// the same bytes in the same run. Ranks find each other through port files in a rendezvous folder.
/// Algorithm bandwidth = bytes / time; bus bandwidth = algorithm bandwidth · 2(N−1)/N (the bytes each link
/// carries in a ring, NCCL's convention), comparable with the socket's.
/// </summary>
public static class AllReduceBenchmark
{
    public sealed record RankResult(string Op, int Ranks, int Floats, double[] Seconds);

    /// <summary>One rank's side: bind, publish the port, wait for everyone, run each op, report (rank 0).</summary>
    public static async Task<int> RunRank(string folder, int rank, int size, int floats, int iterations, CancellationToken ct)
    {
        var listener = TcpRankTransport.BindListener(IPAddress.Loopback);
        var port = (listener.LocalEndpoint).Port;
        await File.WriteAllTextAsync(Path.Combine(folder, $"rank-{rank}.tmp"), port.ToString(), ct);
        File.Move(Path.Combine(folder, $"rank-{rank}.tmp"), Path.Combine(folder, $"rank-{rank}.port"));
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (Enumerable.Range(0, size).Any(r => !File.Exists(Path.Combine(folder, $"rank-{r}.port"))))
        {
            if (DateTime.UtcNow > deadline) throw new CliException("ranks did not all start within 60 s");
            await Task.Delay(20, ct);
        }
        var endpoints = Enumerable.Range(0, size)
            .Select(r => new IPEndPoint(IPAddress.Loopback, int.Parse(File.ReadAllText(Path.Combine(folder, $"rank-{r}.port"))))).ToList();
        await using var transport = TcpRankTransport.Start(new RankMembership("bench-allreduce", 1, endpoints), rank, listener);
        transport.ReceiveTimeout = TimeSpan.FromSeconds(60);
        var collective = new Collective(transport);
        // A model-like layout: a few large tensors and some small ones.
        var layout = new TensorLayout([floats / 2, floats / 4, floats / 8, floats - floats / 2 - floats / 4 - floats / 8]);
        var buffer = new float[floats];
        var rng = new Random(rank);
        long step = 0;
        foreach (var op in new[] { GradientCombine.Sum, GradientCombine.Adasum })
        {
            var seconds = new List<double>();
            for (int i = 0; i <= iterations; i++)
            {
                for (int j = 0; j < buffer.Length; j++) buffer[j] = (float)(rng.NextDouble() - 0.5);
                // Start together: a tiny all-reduce as a barrier.
                await collective.RingAllReduce(new float[size], average: false, step: ++step, ct);
                var clock = Stopwatch.StartNew();
                await collective.AllReduce(buffer, layout, op, ++step, ct);
                if (i > 0) seconds.Add(clock.Elapsed.TotalSeconds); // the first is warm-up
            }
            if (rank == 0)
            {
                var result = new RankResult(op == GradientCombine.Sum ? "ring sum" : "adasum", size, floats, seconds.ToArray());
                await File.WriteAllTextAsync(Path.Combine(folder, $"result-{op}.json"), JsonSerializer.Serialize(result), ct);
            }
        }
        return 0;
    }

    /// <summary>One rank of the grain-call baseline: an Orleans client of the benchmark's silo, summing through a grain.</summary>
    public static async Task<int> RunGrainRank(string folder, int rank, int size, int floats, int iterations, CancellationToken ct)
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Logging.SetMinimumLevel(LogLevel.Error);
        builder.UseOrleansClient(c =>
        {
            Orchestrator.Client.ClusterConnection.Embedded.ConfigureClient(c);
            c.Configure<Orleans.Configuration.ClientMessagingOptions>(o => o.ResponseTimeout = TimeSpan.FromMinutes(2));
        });
        using var host = builder.Build();
        await host.StartAsync(ct);
        var grains = (IGrainFactory)host.Services.GetService(typeof(IGrainFactory))!;
        var grain = grains.GetGrain<IReduceBenchGrain>($"bench-{Path.GetFileName(folder)}");
        var buffer = new float[floats];
        var rng = new Random(rank);
        var seconds = new List<double>();
        for (int i = 0; i <= iterations; i++)
        {
            for (int j = 0; j < buffer.Length; j++) buffer[j] = (float)(rng.NextDouble() - 0.5);
            await grain.Reduce(size, 2L * i, new byte[4 * size]); // barrier
            var clock = Stopwatch.StartNew();
            var sum = await grain.Reduce(size, 2L * i + 1, System.Runtime.InteropServices.MemoryMarshal.AsBytes(buffer.AsSpan()).ToArray());
            System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(sum).CopyTo(buffer);
            if (i > 0) seconds.Add(clock.Elapsed.TotalSeconds);
        }
        if (rank == 0)
            await File.WriteAllTextAsync(Path.Combine(folder, "result-grains.json"), JsonSerializer.Serialize(new RankResult("grain calls", size, floats, seconds.ToArray())), ct);
        await host.StopAsync(ct);
        return 0;
    }

    /// <summary>Echo of <paramref name="bytes"/> over one loopback connection; bytes both ways / time.</summary>
    public static async Task<double> SocketEchoBytesPerSecond(int bytes, int iterations)
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        using var client = new TcpClient { NoDelay = true, SendBufferSize = 4 << 20, ReceiveBufferSize = 4 << 20 };
        await client.ConnectAsync((IPEndPoint)listener.LocalEndpoint);
        using var server = await listener.AcceptTcpClientAsync();
        server.NoDelay = true;
        server.SendBufferSize = server.ReceiveBufferSize = 4 << 20;
        var payload = new byte[bytes];
        var back = new byte[bytes];
        var echo = Task.Run(async () =>
        {
            var buffer = new byte[bytes];
            var stream = server.GetStream();
            for (int i = 0; i <= iterations; i++)
            {
                await stream.ReadExactlyAsync(buffer);
                await stream.WriteAsync(buffer);
            }
        });
        var s = client.GetStream();
        var best = double.MaxValue;
        for (int i = 0; i <= iterations; i++)
        {
            var clock = Stopwatch.StartNew();
            var sending = s.WriteAsync(payload).AsTask();
            await s.ReadExactlyAsync(back);
            await sending;
            if (i > 0) best = Math.Min(best, clock.Elapsed.TotalSeconds);
        }
        await echo;
        return 2.0 * bytes / best;
    }

    /// <summary>Starts <paramref name="size"/> rank processes of this CLI and collects rank 0's timings.</summary>
    public static async Task<IReadOnlyList<RankResult>> RunRanks(int size, int floats, int iterations, CancellationToken ct, bool viaGrains = false)
    {
        var folder = Directory.CreateTempSubdirectory("orch-allreduce").FullName;
        var self = Environment.ProcessPath!;
        var dll = typeof(AllReduceBenchmark).Assembly.Location;
        var processes = Enumerable.Range(0, size).Select(r =>
        {
            var info = new ProcessStartInfo(self) { RedirectStandardOutput = true, RedirectStandardError = true };
            if (Path.GetFileNameWithoutExtension(self) == "dotnet") info.ArgumentList.Add(dll);
            foreach (var a in new[] { "bench", "allreduce-rank", "--folder", folder, "--rank", r.ToString(), "--size", size.ToString(),
                         "--floats", floats.ToString(), "--iterations", iterations.ToString() })
                info.ArgumentList.Add(a);
            if (viaGrains) info.ArgumentList.Add("--via-grains");
            return Process.Start(info)!;
        }).ToList();
        try
        {
            foreach (var p in processes)
            {
                await p.WaitForExitAsync(ct);
                if (p.ExitCode != 0) throw new CliException($"a rank process failed: {await p.StandardOutput.ReadToEndAsync(ct)}{await p.StandardError.ReadToEndAsync(ct)}");
            }
            return Directory.GetFiles(folder, "result-*.json")
                .Select(f => JsonSerializer.Deserialize<RankResult>(File.ReadAllText(f))!).OrderBy(r => r.Op).ToList();
        }
        finally
        {
            foreach (var p in processes) if (!p.HasExited) p.Kill();
            Directory.Delete(folder, recursive: true);
        }
    }

    public static void Print(int floats, double echo, IReadOnlyList<RankResult> results)
    {
        var bytes = floats * 4.0;
        AnsiConsole.MarkupLine($"[bold]orch bench allreduce[/]: {floats:N0} floats ({bytes / 1e6:F1} MB), ranks as processes on 127.0.0.1, {Environment.ProcessorCount} cores; median of the timed iterations");
        AnsiConsole.MarkupLine($"raw socket echo of the same bytes: [bold]{echo / 1e9:F2} GB/s[/]");
        var table = new Table().Border(TableBorder.Markdown).AddColumns("ranks", "op", "time", "algorithm GB/s", "bus GB/s", "bus / socket", "adasum / ring", "vs grain calls");
        foreach (var group in results.GroupBy(r => r.Ranks).OrderBy(g => g.Key))
        {
            double Median(RankResult r) => r.Seconds.Order().ElementAt(r.Seconds.Length / 2);
            var ring = group.Single(r => r.Op == "ring sum");
            var grains = group.SingleOrDefault(r => r.Op == "grain calls");
            foreach (var r in group.OrderBy(r => r.Op switch { "ring sum" => 0, "adasum" => 1, _ => 2 }))
            {
                var seconds = Median(r);
                var algorithm = bytes / seconds;
                var bus = algorithm * 2 * (r.Ranks - 1) / r.Ranks;
                table.AddRow(r.Ranks.ToString(), r.Op, $"{seconds * 1000:F1} ms", $"{algorithm / 1e9:F2}", $"{bus / 1e9:F2}", $"{bus / echo:F2}",
                    r.Op == "adasum" ? $"{Median(ring) / seconds:F2}" : "",
                    grains is not null && r.Op != "grain calls" ? $"{Median(grains) / seconds:F1}x" : "");
            }
        }
        AnsiConsole.Write(table);
    }
}
