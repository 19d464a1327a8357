using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Orchestrator.Tests;

/// <summary>
/// The embedded default, as the README runs it: `orch demo` (a silo and a worker in one process, no Redis) trains
/// Fashion-MNIST end to end, and `orch up` keeps one running that `orch submit` reaches with no flags. Both serve the
/// silo's pages and API with --http-port. They use the default ports (11111, 30000), which no other test takes.
/// </summary>
[Collection("processes")]
public sealed class EmbeddedProcessTests(ITestOutputHelper output) : IDisposable
{
    readonly List<ChildProcess> _processes = [];
    readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(10) };

    [Fact]
    public async Task Demo_TrainsFashionMnistEndToEnd_AndItsPagesShowTheJobAndItsCurveWhileItRuns()
    {
        var web = ProcessCluster.FreePort();
        var demo = Track(ChildProcess.Dotnet("orch-demo", Repo.Cli, "demo", "--http-port", web.ToString()));
        var api = $"http://127.0.0.1:{web}/api/";
        var id = await Poll(async () =>
        {
            var jobs = JsonDocument.Parse(await _http.GetStringAsync(api + "jobs")).RootElement;
            return jobs.EnumerateArray().Select(j => j.GetProperty("jobId").GetString()).FirstOrDefault(j => j!.StartsWith("demo-mlp-", StringComparison.Ordinal));
        }, "the demo's job on /api/jobs", demo);
        var curve = await Poll(async () =>
        {
            var detail = JsonDocument.Parse(await _http.GetStringAsync(api + $"jobs/{id}")).RootElement;
            var points = detail.GetProperty("history").GetProperty("curve").GetArrayLength();
            return points >= 2 ? (int?)points : null;
        }, "a training curve of two points", demo);
        Assert.True(curve >= 2);

        Assert.Equal(0, await demo.WaitForExit(TimeSpan.FromSeconds(240)));
        var result = Regex.Match(demo.Output, $@"{Regex.Escape(id!)} succeeded: test accuracy (0\.\d+) after 5 epochs");
        Assert.True(result.Success, demo.Output);
        Assert.InRange(double.Parse(result.Groups[1].Value, CultureInfo.InvariantCulture), 0.80, 1.0); // the README's 5 epochs; 10 classes: chance is 0.10
    }

    [Fact]
    public async Task Up_KeepsAnEmbeddedClusterThatSubmitReachesWithNoFlags_AndServesItsPages()
    {
        var web = ProcessCluster.FreePort();
        var up = Track(ChildProcess.Dotnet("orch-up", Repo.Cli, "up", "--http-port", web.ToString()));
        await up.WaitForLine(l => l.Contains("is up at gateway 127.0.0.1:30000") && l.Contains($"pages at http://127.0.0.1:{web}/"), TimeSpan.FromSeconds(90));
        Assert.Equal("ready", await _http.GetStringAsync($"http://127.0.0.1:{web}/readyz"));

        var submit = Track(ChildProcess.Dotnet("orch-submit", Repo.Cli, "submit", Path.Combine(Repo.Root, "examples", "fmnist-mlp.yaml"),
            "--set", "train.epochs=1", "--set", "name=embedded", "--wait"));
        Assert.Equal(0, await submit.WaitForExit(TimeSpan.FromSeconds(240)));
        Assert.DoesNotContain("No cluster is running", submit.Output); // it reached `orch up`'s cluster, not one of its own
        var id = Regex.Match(submit.Output, @"submitted (embedded-\w+)").Groups[1].Value;
        Assert.NotEmpty(id);

        var job = JsonDocument.Parse(await _http.GetStringAsync($"http://127.0.0.1:{web}/api/jobs/{id}")).RootElement.GetProperty("info");
        Assert.Equal("Succeeded", job.GetProperty("state").GetString());
        var nodes = JsonDocument.Parse(await _http.GetStringAsync($"http://127.0.0.1:{web}/api/nodes")).RootElement;
        Assert.Equal("local", nodes.EnumerateArray().Single().GetProperty("nodeId").GetString());
        var jobs = Track(ChildProcess.Dotnet("orch-jobs", Repo.Cli, "jobs"));
        Assert.Equal(0, await jobs.WaitForExit(TimeSpan.FromSeconds(60)));
        Assert.Contains(id, jobs.Output);
        Assert.False(up.HasExited, "orch up keeps running after its jobs end");
    }

    ChildProcess Track(ChildProcess process)
    {
        _processes.Add(process);
        return process;
    }

    /// <summary>Reads until <paramref name="read"/> gives a value (the web host may not listen yet: retried).</summary>
    async Task<T> Poll<T>(Func<Task<T?>> read, string what, ChildProcess owner)
    {
        var deadline = DateTime.UtcNow.AddSeconds(120);
        while (DateTime.UtcNow < deadline && !owner.HasExited)
        {
            try
            {
                if (await read() is { } value) return value;
            }
            catch (HttpRequestException) { } // not listening yet
            await Task.Delay(250);
        }
        throw new TimeoutException($"never saw {what}:\n{owner.Output}");
    }

    public void Dispose()
    {
        foreach (var p in _processes)
        {
            output.WriteLine($"----- {p.Name} -----\n{p.Output}");
            p.Dispose();
        }
        _http.Dispose();
    }
}
