using Microsoft.Extensions.Logging.Abstractions;
using Orchestrator.Worker;

namespace Orchestrator.Tests.Adversarial;

/// <summary>
/// A job whose data is missing on the worker (submitted with --skip-data-check, or its data only on the CLI's host)
/// stayed "running" for good while its runner crashed once a second, holding the device. A real node agent in this
/// process now fails it with a typed cause and frees the device for the next job.
/// </summary>
[Collection("torch")]
public class WorkerSetupFailureTests
{
    static string Spec(string name, string path, string train) => JobSpecJson.Write(JobSpecParser.Parse(
        $"name: {name}\nmodel: {{type: mlp, hidden: [16]}}\ndata: {{dataset: fashion-mnist, path: {path}, trainLimit: 512}}\ntrain: {train}",
        new SpecValidationOptions { CheckFiles = false }));

    [Fact]
    public async Task AJobWhoseDataIsMissingOnTheWorker_FailsAsInvalidData_AndTheDeviceRunsTheNextJob()
    {
        var fixture = new ClusterFixture();
        await fixture.InitializeAsync();
        using var stop = new CancellationTokenSource();
        try
        {
            var options = new NodeAgentOptions("setup", ["cpu:0"]) { HeartbeatPeriod = TimeSpan.FromMilliseconds(200) };
            var agent = new NodeAgent(fixture.Grains, options, new Orchestrator.Core.Checkpoints.FileCheckpointStore(Directory.CreateTempSubdirectory("ckpt").FullName), new WorkerChaos(options, NullLogger<WorkerChaos>.Instance), NullLogger<NodeAgent>.Instance);
            var running = agent.RunAsync(stop.Token);
            var missing = Path.Combine(Path.GetTempPath(), $"no-data-{Guid.NewGuid():n}");

            await fixture.Grains.GetGrain<IJobGrain>("nodata").Submit(new JobSubmission(Spec("nodata", missing, "{steps: 5}"), "test"));
            var failed = await Until(fixture, "nodata", j => j.State is JobState.Failed or JobState.Succeeded);

            Assert.Equal(JobState.Failed, failed.State);
            Assert.Equal(FailureCause.InvalidData, failed.Failure!.Cause);
            Assert.Contains(missing, failed.Failure.Message);
            Assert.Contains("missing on this node", failed.Failure.Message);

            await fixture.Grains.GetGrain<IJobGrain>("next").Submit(new JobSubmission(Spec("next", FashionMnistFiles.DefaultPath, "{steps: 5}"), "test"));
            var next = await Until(fixture, "next", j => j.State is JobState.Failed or JobState.Succeeded);
            Assert.Equal(JobState.Succeeded, next.State);
            Assert.Empty((await fixture.Grains.GetGrain<INodeGrain>("setup").GetInfo()).Assignments);
            Assert.False(running.IsCompleted);
        }
        finally
        {
            await stop.CancelAsync();
            await fixture.DisposeAsync();
        }
    }

    static async Task<JobInfo> Until(ClusterFixture fixture, string id, Func<JobInfo, bool> condition)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (true)
        {
            var info = await fixture.Grains.GetGrain<IJobGrain>(id).GetInfo();
            if (condition(info)) return info;
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"job {id} is still {info.State} after 60 s");
            await Task.Delay(200);
        }
    }
}
