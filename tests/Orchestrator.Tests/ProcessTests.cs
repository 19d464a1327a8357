using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Orchestrator.Tests;

/// <summary>
/// End to end with real processes: redis-server, silos (Redis clustering and storage), workers and the orch CLI,
/// with crashes made by SIGKILL.
/// </summary>
[Collection("processes")]
public sealed class ProcessTests(ITestOutputHelper output) : ProcessClusterTest(output)
{
    const int CheckpointEvery = 300;

    Task<(ChildProcess Process, int SiloPort)> StartSilo() => Cluster.StartSilo();
    ChildProcess StartWorker(string nodeId) => Cluster.StartWorker(nodeId);
    Task ConnectClient() => Cluster.ConnectClient();
    IGrainFactory Grains => Cluster.Grains;
    Task<JobInfo> WaitFor(string id, Func<JobInfo, bool> condition, string what, TimeSpan timeout) => Cluster.WaitFor(id, condition, what, timeout);
    Task<IReadOnlyList<JobEvent>> Events(string id) => Cluster.Events(id);

    /// <summary>Submits through the real CLI and returns the job id it printed.</summary>
    async Task<string> SubmitWithCli(int epochs)
    {
        return await Cluster.SubmitWithCli($"""
            name: e2e
            model: {"{"}type: mlp, hidden: [256, 128]{"}"}
            data: {"{"}dataset: fashion-mnist{"}"}
            train: {"{"}epochs: {epochs}, batchSize: 64, lr: 0.05, checkpointEvery: {CheckpointEvery}{"}"}
            """);
    }

    /// <summary>
    /// Helm's Redis kept its data on no volume: a FLUSHALL (standing in for a restart of its pod) made a running job
    /// vanish within a second, with no incident and /readyz still 200. The silo now notices that the cluster's
    /// generation marker is gone, records a StateStoreLost incident and reports not ready.
    /// </summary>
    [Fact]
    public async Task AStateStoreThatLostItsData_IsAnIncident_AndTheSiloReportsNotReady()
    {
        var web = ProcessCluster.FreePort();
        await Cluster.StartSilo("--http-port", web.ToString());
        using var http = new HttpClient();
        Assert.Equal("ready", await http.GetStringAsync($"http://127.0.0.1:{web}/readyz"));
        using (var redis = await StackExchange.Redis.ConnectionMultiplexer.ConnectAsync($"{Cluster.Redis},allowAdmin=true"))
        {
            var db = redis.GetDatabase();
            var deadline = DateTime.UtcNow.AddSeconds(20);
            while (!await db.KeyExistsAsync(Orchestrator.Silo.StoreGeneration.Key) && DateTime.UtcNow < deadline) await Task.Delay(100);
            Assert.True(await db.KeyExistsAsync(Orchestrator.Silo.StoreGeneration.Key), "no generation marker was written");
            await redis.GetServer(Cluster.Redis).FlushAllDatabasesAsync();
        }
        var flushed = DateTime.UtcNow;

        HttpResponseMessage ready;
        while ((ready = await http.GetAsync($"http://127.0.0.1:{web}/readyz")).IsSuccessStatusCode && DateTime.UtcNow - flushed < TimeSpan.FromSeconds(20)) await Task.Delay(200);
        var noticedAfter = DateTime.UtcNow - flushed;
        Assert.Equal(System.Net.HttpStatusCode.ServiceUnavailable, ready.StatusCode);
        Assert.Contains("lost its data", await ready.Content.ReadAsStringAsync());
        Assert.True(noticedAfter < Orchestrator.Silo.StoreGeneration.Period * 3, $"noticed after {noticedAfter.TotalSeconds:F1} s");
        var incidents = System.Text.Json.JsonDocument.Parse(await http.GetStringAsync($"http://127.0.0.1:{web}/api/incidents")).RootElement.EnumerateArray()
            .Select(v => v.GetProperty("incident")).ToList();
        Assert.Contains(incidents, i => i.GetProperty("kind").GetString() == "StateStoreLost" && i.GetProperty("category").GetString() == "StateStoreOutage");
        output.WriteLine($"the lost store was noticed {noticedAfter.TotalSeconds:F1} s after FLUSHALL");
    }

    /// <summary>A silo asked to stop while Redis was down kept retrying its membership writes for over 90 s.</summary>
    [Fact]
    public async Task ASilo_StopsWithinItsDeadline_OnSigterm_WhileTheStateStoreIsDown()
    {
        var (silo, _) = await StartSilo();
        Cluster.RedisProcess.Freeze();
        try
        {
            var clock = System.Diagnostics.Stopwatch.StartNew();
            silo.Terminate();
            await silo.WaitForExit(TimeSpan.FromSeconds(60));
            output.WriteLine($"stopped after {clock.Elapsed.TotalSeconds:F1} s, exit code {silo.ExitCode}");
            Assert.InRange(clock.Elapsed.TotalSeconds, 0, Orchestrator.Silo.ShutdownDeadline.Limit.TotalSeconds + 5);
        }
        finally { Cluster.RedisProcess.Thaw(); }
    }

    [Fact]
    public async Task KillingTheSiloThatHostsTheJobGrain_TheJobStillCompletes()
    {
        var silos = new[] { await StartSilo(), await StartSilo() };
        StartWorker("w1");
        await ConnectClient();
        var id = await SubmitWithCli(epochs: 5);
        var before = await WaitFor(id, j => j.CheckpointStep >= 2 * CheckpointEvery, "checkpointed twice", TimeSpan.FromSeconds(120));

        var hostPort = Orleans.Runtime.SiloAddress.FromParsableString(before.HostSilo!).Endpoint.Port;
        var victim = silos.Single(s => s.SiloPort == hostPort);
        victim.Process.Kill();
        var done = await WaitFor(id, j => j.State == JobState.Succeeded, "succeeded", TimeSpan.FromSeconds(180));
        var events = await Events(id);

        Assert.NotEqual(before.HostSilo, done.HostSilo);
        Assert.Contains(events, e => e.Kind == JobEventKind.RecoveredFromStorage && e.PreviousSilo == before.HostSilo);
        Assert.Equal(5 * (60_000 / 64), done.Result!.Steps);
        Assert.True(done.Result.TestAccuracy > 0.8, $"accuracy {done.Result.TestAccuracy}");
        Assert.Equal(0, done.Recoveries);
        // The crash is in the cluster's incident log, as `orch incidents` shows it.
        var incidents = Cluster.Track(ChildProcess.Dotnet("orch-incidents", Repo.Cli, "incidents", "--redis", Cluster.Redis));
        Assert.Equal(0, await incidents.WaitForExit(TimeSpan.FromSeconds(60)));
        Assert.Contains("SiloCrash 1", incidents.Output); // the per-category count under the table
    }

    [Fact]
    public async Task Sweep_RunsAsOneFusedArrayOnOneDevice_AndEachJobKeepsItsOwnResult()
    {
        await StartSilo();
        StartWorker("w1");
        var spec = Path.Combine(Directory.CreateTempSubdirectory("spec").FullName, "sweep.yaml");
        await File.WriteAllTextAsync(spec, "name: sweep\nmodel: {type: mlp, hidden: [64]}\ndata: {dataset: fashion-mnist, trainLimit: 6400}\ntrain: {epochs: 2, batchSize: 64}\n");
        const string lrs = "0.01,0.02,0.05,0.1,0.2,0.3,0.5,1.0";

        var submit = ChildProcess.Dotnet("orch-sweep", Repo.Cli, "submit", spec, "--sweep", $"train.lr={lrs}", "--wait", "--redis", Cluster.Redis);
        Cluster.Track(submit);
        var exit = await submit.WaitForExit(TimeSpan.FromSeconds(180));
        var list = ChildProcess.Dotnet("orch-jobs", Repo.Cli, "jobs", "--redis", Cluster.Redis);
        Cluster.Track(list);
        Assert.Equal(0, await list.WaitForExit(TimeSpan.FromSeconds(60)));
        await ConnectClient();
        var jobs = (await Grains.GetGrain<IJobIndexGrain>(SchedulerKeys.Cluster).List()).Where(j => j.Name.StartsWith("sweep-")).ToList();

        Assert.Equal(8, jobs.Count);
        Assert.Single(jobs.Select(j => j.Assignment!.ArrayId).Distinct());
        Assert.Single(jobs.Select(j => $"{j.Assignment!.NodeId}/{j.Assignment.Device}").Distinct());
        Assert.All(jobs, j => Assert.Equal(8, j.Assignment!.ArrayWidth));
        Assert.All(jobs, j => Assert.Contains(j.State, new[] { JobState.Succeeded, JobState.Failed }));
        var succeeded = jobs.Where(j => j.State == JobState.Succeeded).ToList();
        Assert.True(succeeded.Count >= 5, $"only {succeeded.Count} of 8 succeeded");
        Assert.True(succeeded.Select(j => j.Result!.TestAccuracy).Distinct().Count() >= succeeded.Count - 1, "members should reach their own accuracies");
        Assert.All(jobs.Where(j => j.State == JobState.Failed), j => Assert.Equal(FailureCause.NonFiniteLoss, j.Failure!.Cause));
        Assert.Equal(jobs.Any(j => j.State == JobState.Failed) ? 1 : 0, exit);
        foreach (var j in jobs)
            Assert.Contains(list.Output.Split('\n'), line => line.Contains(j.JobId) && line.Contains("8 fused") && line.Contains(j.State == JobState.Succeeded ? $"{j.Result!.TestAccuracy:F4}" : "failed"));
        output.WriteLine(list.Output);
    }

    [Fact]
    public async Task KillingTheWorker_TheJobResumesFromItsCheckpointOnAnotherNode()
    {
        await StartSilo();
        var first = StartWorker("w1");
        await ConnectClient();
        var id = await SubmitWithCli(epochs: 4);
        await WaitFor(id, j => j.State == JobState.Running && j.CheckpointStep >= CheckpointEvery, "running with a checkpoint", TimeSpan.FromSeconds(120));

        first.Kill();
        var killedAt = DateTime.UtcNow;
        var atKill = await Grains.GetGrain<IJobGrain>(id).GetInfo();
        var lastReported = Math.Max(atKill.Progress?.Step ?? 0, atKill.CheckpointStep ?? 0);
        StartWorker("w2");
        var moved = await WaitFor(id, j => j.Assignment?.NodeId == "w2", "placed on w2", TimeSpan.FromSeconds(60));
        var rescheduledAfter = DateTime.UtcNow - killedAt;
        var done = await WaitFor(id, j => j.State == JobState.Succeeded, "succeeded", TimeSpan.FromSeconds(180));
        var events = await Events(id);

        var resume = events.Single(e => e.Source == "w2" && e.Kind == JobEventKind.Started);
        var resumedAt = resume.ResumeStep!.Value;
        Assert.True(resumedAt >= lastReported - CheckpointEvery, $"resumed at {resumedAt}, last reported step {lastReported}: lost more than one checkpoint interval");
        Assert.True(rescheduledAfter >= TimeSpan.FromSeconds(4), $"rescheduled after {rescheduledAfter}, before the 5 s heartbeat timeout");
        Assert.Contains(events, e => e.Kind == JobEventKind.NodeLost && e.Node == "w1");
        Assert.Equal(1, done.Recoveries);
        Assert.Equal(4 * (60_000 / 64), done.Result!.Steps);
        output.WriteLine($"killed at reported step {lastReported}, resumed at {resumedAt}, rescheduled after {rescheduledAfter.TotalSeconds:F1} s");
    }
}
