namespace Orchestrator.Tests.Infrastructure;

/// <summary>
/// The CLI's local process cluster (<see cref="ProcessCluster"/>) as the process tests use it: this build's silo and
/// worker, every process's last lines in the test's output when it ends (ORCH_TEST_LOGS=DIR keeps their whole logs
/// there), and helpers to submit through the real CLI and to wait for a job.
/// </summary>
public static class TestClusters
{
    public static ProcessCluster Create(ITestOutputHelper output) => new(output.WriteLine,
        new ProcessClusterOptions(SiloDll: Repo.Silo, WorkerDll: Repo.Worker, LogFolder: Environment.GetEnvironmentVariable("ORCH_TEST_LOGS"), ReportTails: true));

    /// <summary>Submits a spec through the real CLI and returns the job id it printed.</summary>
    public static async Task<string> SubmitWithCli(this ProcessCluster cluster, string yaml)
    {
        var spec = Path.Combine(Directory.CreateTempSubdirectory("spec").FullName, "job.yaml");
        await File.WriteAllTextAsync(spec, yaml);
        var cli = cluster.Track(ChildProcess.Dotnet("orch-submit", Repo.Cli, "submit", spec, "--redis", cluster.Redis));
        Assert.Equal(0, await cli.WaitForExit(TimeSpan.FromSeconds(60)));
        var line = cli.Output.Split('\n').Single(l => l.StartsWith("submitted "));
        return line.Split(' ')[1];
    }

    public static async Task<JobInfo> WaitFor(this ProcessCluster cluster, string id, Func<JobInfo, bool> condition, string what, TimeSpan timeout, Action<JobInfo>? observe = null)
    {
        var deadline = DateTime.UtcNow + timeout;
        JobInfo? info = null;
        while (DateTime.UtcNow < deadline)
        {
            try
            {
                info = await cluster.Grains.GetGrain<IJobGrain>(id).GetInfo();
                observe?.Invoke(info);
                if (condition(info)) return info;
                if (info.State is JobState.Failed or JobState.Cancelled) break;
            }
            catch (Exception e) when (Resilience.IsTransient(e)) { }
            await Task.Delay(200);
        }
        throw new TimeoutException($"job {id} never became {what}; last: {info}");
    }

    /// <summary>The job's events, also written to the test's output.</summary>
    public static async Task<IReadOnlyList<JobEvent>> Events(this ProcessCluster cluster, string id)
    {
        var events = await cluster.Grains.GetGrain<IJobGrain>(id).GetEvents();
        foreach (var e in events) cluster.Progress($"{e.At:HH:mm:ss.fff} {e.Source} {e.Kind}: {e.Message}");
        return events;
    }
}
